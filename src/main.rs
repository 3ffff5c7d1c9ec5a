/// mimalloc instead of glibc's malloc. The agent's allocations are mostly
/// short-lived copies freed on another thread (Redis replies, bullmq-official's
/// per-call copies of its Lua scripts, HTTP heads), which glibc serves with bin
/// consolidation; with mimalloc the agent spends 10–15 % less CPU per job in
/// `scripts/bench queue`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(geoctl::cli::main());
}
