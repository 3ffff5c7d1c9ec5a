fn main() {
    std::process::exit(geoctl::cli::main());
}
