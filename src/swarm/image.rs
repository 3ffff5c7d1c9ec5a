//! `geoctl image build`: the agent image, made from this very binary. No
//! base image and no registry: the build context is a tar made here, holding
//! the binary, the glibc libraries and loader it runs with (read from its own
//! memory map), the CA certificates, and a passwd entry for `nobody`; the
//! engine's builder unpacks it `FROM scratch`.
//!
//! The browser variant (`--with-browser`) adds the host's Debian Chromium the
//! same way: its directory's binaries and resources, the shared libraries
//! `ldd` resolves for them on this host, the NSS modules Chromium loads at run
//! time, and one font family with a fontconfig of its own.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use bollard::query_parameters::BuildImageOptions;
use futures::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{api_message, is_not_found, Engine, SwarmError};

/// The image label that says whether an agent image carries Chromium (`yes`/`no`).
pub const BROWSER_LABEL: &str = "io.geoctl.browser";
/// The uid and gid the agent runs as (`nobody`).
pub const AGENT_UID: u64 = 65534;
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// Where Debian's `chromium` package keeps the browser (`/usr/bin/chromium` is a shell wrapper).
pub const CHROMIUM_DIR: &str = "/usr/lib/chromium";
/// The font set of the browser image: DejaVu covers Latin, Greek and Cyrillic
/// in 10 MB; a journey's screenshot needs legible text, not every script.
const FONT_DIR: &str = "/usr/share/fonts/truetype/dejavu";
/// fontconfig's configuration in the browser image: the one font directory,
/// and its cache on the writable /tmp (the root is read-only in a stack).
const FONTS_CONF: &str = "<?xml version=\"1.0\"?>\n<!DOCTYPE fontconfig SYSTEM \"fonts.dtd\">\n<fontconfig>\n  \
<dir>/usr/share/fonts</dir>\n  <cachedir>/tmp/fontconfig</cachedir>\n</fontconfig>\n";
/// Files of Chromium's directory the image leaves out: Vulkan's validation
/// layer and mock driver are for Chromium's own tests (24 MB), and
/// `extensions` is an empty place for system-wide extensions.
const CHROMIUM_SKIP: &[&str] = &["libVkLayer_khronos_validation.so", "libVkICD_mock_icd.so", "extensions"];
/// Libraries Chromium opens at run time rather than links: NSS's software
/// token and its crypto (TLS certificates) and the root certificates module.
const NSS_MODULES: &[&str] = &["libsoftokn3.so", "libfreeblpriv3.so", "libfreebl3.so", "libnssckbi.so"];

fn dockerfile(browser: bool) -> String {
    let env = if browser {
        format!(
            " CHROMIUM_PATH={CHROMIUM_DIR}/chromium FONTCONFIG_FILE=/etc/fonts/fonts.conf \
             CHROMIUM_SANDBOX=off HOME=/tmp"
        )
    } else {
        String::new()
    };
    format!(
        "FROM scratch\nADD rootfs.tar /\nENV PATH=/usr/local/bin SSL_CERT_FILE={CA_BUNDLE}{env}\n\
         USER 65534:65534\nWORKDIR /tmp\nCMD [\"geoctl\", \"--help\"]\n"
    )
}

/// What the build produced.
#[derive(Debug, Clone, Serialize)]
pub struct Built {
    pub tag: String,
    pub id: String,
    pub files: usize,
    pub context_bytes: usize,
    /// Whether the image carries Chromium (`--with-browser`).
    pub browser: bool,
    /// The image's size as the engine reports it, when it does.
    pub size_bytes: Option<i64>,
}

/// The files of the image: (path in the image, source on this machine).
pub fn image_files(binary: &Path) -> std::io::Result<Vec<(PathBuf, PathBuf)>> {
    let mut files = vec![(PathBuf::from("/usr/local/bin/geoctl"), binary.to_path_buf())];
    let bytes = std::fs::read(binary)?;
    if let Some(interp) = interpreter(&bytes) {
        let real = std::fs::canonicalize(&interp)?;
        files.push((interp.clone(), real.clone()));
        if real != interp {
            files.push((real.clone(), real));
        }
    }
    // What the running binary mapped is exactly what it needs to start.
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    let mut libs = BTreeSet::new();
    for line in maps.lines() {
        let Some(path) = line.split_whitespace().nth(5) else { continue };
        let name = Path::new(path).file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if path.starts_with('/') && (name.ends_with(".so") || name.contains(".so.")) {
            libs.insert(PathBuf::from(path));
        }
    }
    for lib in libs {
        if !files.iter().any(|(dest, _)| *dest == lib) {
            // Loaders look libraries up by soname in the standard directories.
            files.push((lib.clone(), lib));
        }
    }
    if Path::new(CA_BUNDLE).is_file() {
        files.push((PathBuf::from(CA_BUNDLE), PathBuf::from(CA_BUNDLE)));
    }
    Ok(files)
}

/// The browser's files, for the image with a browser: (path in the image,
/// source on this machine). Everything of [`CHROMIUM_DIR`] but
/// [`CHROMIUM_SKIP`], the libraries `ldd` resolves for its binaries and
/// libraries and for [`NSS_MODULES`], and the fonts of [`FONT_DIR`]. A
/// library keeps the name the loader asks for (its soname) in the real
/// directory of the path `ldd` printed, so `/lib/…` and `/usr/lib/…` of a
/// merged-/usr host are one file.
pub fn chromium_files() -> std::io::Result<Vec<(PathBuf, PathBuf)>> {
    let dir = Path::new(CHROMIUM_DIR);
    if !dir.join("chromium").is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!(
                "no Chromium at {CHROMIUM_DIR}/chromium; install Debian's package (apt-get install chromium) \
                 on the machine that builds the image"
            ),
        ));
    }
    let mut files = Vec::new();
    let mut elves = Vec::new();
    for entry in walk(dir)? {
        let name = entry.strip_prefix(dir).unwrap_or(&entry);
        if CHROMIUM_SKIP.iter().any(|skip| name.starts_with(skip)) {
            continue;
        }
        if is_elf(&entry)? {
            elves.push(entry.clone());
        }
        files.push((entry.clone(), entry));
    }
    let mut libs = resolve_libraries(&elves)?;
    // NSS loads its modules from the directory libnss3 is in.
    let nss_dir = libs.iter().find(|(dest, _)| dest.ends_with("libnss3.so")).and_then(|(d, _)| d.parent());
    let modules: Vec<PathBuf> =
        nss_dir.map(|d| NSS_MODULES.iter().map(|m| d.join(m)).filter(|p| p.is_file()).collect()).unwrap_or_default();
    libs.extend(resolve_libraries(&modules)?);
    libs.extend(modules.iter().map(|m| (m.clone(), m.clone())));
    for (dest, source) in libs {
        if !files.iter().any(|(d, _)| *d == dest) {
            files.push((dest, source));
        }
    }
    let fonts = walk(Path::new(FONT_DIR))
        .map_err(|e| std::io::Error::new(e.kind(), format!("fonts at {FONT_DIR}: {e}; install fonts-dejavu-core")))?;
    files.extend(fonts.into_iter().map(|f| (f.clone(), f)));
    Ok(files)
}

/// The regular files under `dir`, recursively, in a stable order.
fn walk(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let kind = entry.file_type()?;
        if kind.is_dir() {
            found.extend(walk(&entry.path())?);
        } else if kind.is_file() {
            found.push(entry.path());
        }
    }
    Ok(found)
}

fn is_elf(path: &Path) -> std::io::Result<bool> {
    use std::io::Read;
    let mut magic = [0u8; 4];
    let read = std::fs::File::open(path)?.read(&mut magic)?;
    Ok(read == 4 && &magic == b"\x7fELF")
}

/// The shared libraries `ldd` resolves on this host for `binaries`: (path in
/// the image, file to copy). The loader (`ld-linux`, no `=>`) and the vDSO are
/// left to the base image and the kernel; a library `ldd` cannot find is an error.
fn resolve_libraries(binaries: &[PathBuf]) -> std::io::Result<Vec<(PathBuf, PathBuf)>> {
    let mut libs = BTreeSet::new();
    for binary in binaries {
        let output = std::process::Command::new("ldd").arg(binary).output().map_err(|e| {
            std::io::Error::new(e.kind(), format!("running ldd on {}: {e} (ldd comes with libc-bin)", binary.display()))
        })?;
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let Some((name, rest)) = line.trim().split_once(" => ") else { continue };
            if rest.starts_with("not found") {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("{} needs {name}, which ldd cannot find on this host", binary.display()),
                ));
            }
            let Some(path) = rest.split_whitespace().next().filter(|p| p.starts_with('/')) else { continue };
            libs.insert(PathBuf::from(path));
        }
    }
    libs.into_iter()
        .map(|lib| {
            let dir = std::fs::canonicalize(lib.parent().unwrap_or(Path::new("/")))?;
            let name = lib.file_name().unwrap_or_default();
            Ok((dir.join(name), std::fs::canonicalize(&lib)?))
        })
        .collect()
}

/// The ELF program interpreter (`PT_INTERP`) of a 64-bit little-endian binary.
fn interpreter(elf: &[u8]) -> Option<PathBuf> {
    if elf.get(..4)? != b"\x7fELF" || *elf.get(4)? != 2 || *elf.get(5)? != 1 {
        return None;
    }
    let u16_at = |o: usize| Some(u16::from_le_bytes(elf.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(elf.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(elf.get(o..o + 8)?.try_into().ok()?));
    let phoff = u64_at(0x20)? as usize;
    let phentsize = u16_at(0x36)? as usize;
    let phnum = u16_at(0x38)? as usize;
    for i in 0..phnum {
        let header = phoff + i * phentsize;
        if u32_at(header)? == 3 {
            let offset = u64_at(header + 0x08)? as usize;
            let size = u64_at(header + 0x20)? as usize;
            let text = elf.get(offset..offset + size)?;
            let text = text.split(|b| *b == 0).next()?;
            return Some(PathBuf::from(std::str::from_utf8(text).ok()?));
        }
    }
    None
}

/// The build context: a Dockerfile and `rootfs.tar`, whose ownership and
/// modes the builder keeps when it unpacks it.
pub fn build_context(files: &[(PathBuf, PathBuf)], browser: bool) -> std::io::Result<Vec<u8>> {
    let mut rootfs = tar::Builder::new(Vec::new());
    let mut dirs = BTreeSet::new();
    for (dest, _) in files {
        for ancestor in dest.ancestors().skip(1) {
            if ancestor != Path::new("/") {
                dirs.insert(ancestor.to_path_buf());
            }
        }
    }
    for dir in &dirs {
        append_dir(&mut rootfs, dir, 0o755, 0)?;
    }
    append_dir(&mut rootfs, Path::new("/tmp"), 0o1777, 0)?;
    append_dir(&mut rootfs, Path::new("/var"), 0o755, 0).ok();
    append_dir(&mut rootfs, Path::new("/var/spool"), 0o755, 0).ok();
    append_dir(&mut rootfs, Path::new("/var/spool/geoctl"), 0o755, AGENT_UID)?;
    for (dest, source) in files {
        let data = std::fs::read(source)?;
        let mode = if dest.starts_with("/etc") { 0o644 } else { 0o755 };
        append_file(&mut rootfs, dest, &data, mode)?;
    }
    append_file(
        &mut rootfs,
        Path::new("/etc/passwd"),
        b"root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n",
        0o644,
    )?;
    append_file(&mut rootfs, Path::new("/etc/group"), b"root:x:0:\nnogroup:x:65534:\n", 0o644)?;
    append_file(&mut rootfs, Path::new("/etc/nsswitch.conf"), b"hosts: files dns\n", 0o644)?;
    if browser {
        append_file(&mut rootfs, Path::new("/etc/fonts/fonts.conf"), FONTS_CONF.as_bytes(), 0o644)?;
        // Chromium's shared memory; the stack mounts a tmpfs of its own size here.
        append_dir(&mut rootfs, Path::new("/dev"), 0o755, 0).ok();
        append_dir(&mut rootfs, Path::new("/dev/shm"), 0o1777, 0)?;
    }
    let rootfs = rootfs.into_inner()?;

    let mut context = tar::Builder::new(Vec::new());
    append_file(&mut context, Path::new("Dockerfile"), dockerfile(browser).as_bytes(), 0o644)?;
    append_file(&mut context, Path::new("rootfs.tar"), &rootfs, 0o644)?;
    context.into_inner()
}

fn relative(path: &Path) -> &Path {
    path.strip_prefix("/").unwrap_or(path)
}

fn append_dir(tar: &mut tar::Builder<Vec<u8>>, path: &Path, mode: u32, owner: u64) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_mode(mode);
    header.set_uid(owner);
    header.set_gid(owner);
    header.set_size(0);
    header.set_mtime(0);
    tar.append_data(&mut header, relative(path), std::io::empty())
}

fn append_file(tar: &mut tar::Builder<Vec<u8>>, path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_size(data.len() as u64);
    // A fixed time: the same binary gives the same layer.
    header.set_mtime(0);
    tar.append_data(&mut header, relative(path), data)
}

impl Engine {
    /// Builds the image from the running geoctl binary and tags it `tag`; with
    /// `browser`, the host's Chromium too (see [`chromium_files`]).
    pub async fn build_agent_image(
        &self,
        tag: &str,
        labels: HashMap<String, String>,
        browser: bool,
    ) -> Result<Built, SwarmError> {
        let io = |e: std::io::Error| SwarmError::Api {
            action: "preparing the image's files".into(),
            message: e.to_string(),
        };
        let binary = std::env::current_exe().map_err(io)?;
        let mut files = image_files(&binary).map_err(io)?;
        if browser {
            for (dest, source) in chromium_files().map_err(io)? {
                if !files.iter().any(|(d, _)| *d == dest) {
                    files.push((dest, source));
                }
            }
        }
        let context = build_context(&files, browser).map_err(io)?;
        let context_bytes = context.len();
        let mut labels = labels;
        labels.insert("org.opencontainers.image.title".into(), "geoctl".into());
        labels.insert("org.opencontainers.image.version".into(), env!("CARGO_PKG_VERSION").into());
        labels.insert("io.geoctl.binary-sha256".into(), hex_digest(&std::fs::read(&binary).map_err(io)?));
        labels.insert(BROWSER_LABEL.into(), if browser { "yes" } else { "no" }.into());
        let options = BuildImageOptions {
            dockerfile: "Dockerfile".into(),
            t: Some(tag.to_string()),
            rm: true,
            forcerm: true,
            labels: Some(labels),
            ..Default::default()
        };
        let mut stream = self.docker.build_image(options, None, Some(bollard::body_full(context.into())));
        let mut id = None;
        while let Some(item) = stream.next().await {
            let info =
                item.map_err(|e| SwarmError::Api { action: format!("building {tag}"), message: api_message(&e) })?;
            if let Some(detail) = info.error_detail {
                return Err(SwarmError::Api {
                    action: format!("building {tag}"),
                    message: detail.message.unwrap_or_default(),
                });
            }
            if let Some(line) = info.stream.as_deref().map(str::trim).filter(|l| !l.is_empty()) {
                tracing::debug!(target: "geoctl::image", "{line}");
            }
            if let Some(aux) = info.aux.and_then(|a| a.id) {
                id = Some(aux);
            }
        }
        let inspected = self.docker.inspect_image(tag).await.ok();
        let size_bytes = inspected.as_ref().and_then(|i| i.size);
        let id = id.or_else(|| inspected.and_then(|i| i.id)).unwrap_or_default();
        Ok(Built { tag: tag.to_string(), id, files: files.len(), context_bytes, browser, size_bytes })
    }

    /// The local image id of `reference`, or None when the engine has no such image.
    /// Copies `image` from this engine to `to` (Engine API image save, then
    /// load), unless `to` has it already under the same ID: how a node joined
    /// to a region gets the images its tasks run, with no registry. True when
    /// copied; an image this engine lacks is an error naming how to build it.
    pub async fn copy_image_to(&self, image: &str, to: &Engine) -> Result<bool, SwarmError> {
        let Some(id) = self.image_id(image).await? else {
            return Err(SwarmError::MissingImage { image: image.to_string(), endpoint: self.endpoint.clone() });
        };
        if to.image_id(image).await?.as_deref() == Some(id.as_str()) {
            return Ok(false);
        }
        let action = || format!("copying image {image} from {} to {}", self.endpoint, to.endpoint);
        // Streamed through: the image (about 110 MB) is never held whole here.
        let saved = self.docker.export_image(image);
        let mut loaded = to.docker.import_image_stream(
            bollard::query_parameters::ImportImageOptions { quiet: true, ..Default::default() },
            saved,
            None,
        );
        while let Some(progress) = loaded.next().await {
            let progress = progress.map_err(|e| SwarmError::Api { action: action(), message: api_message(&e) })?;
            if let Some(error) = progress.error_detail.and_then(|d| d.message) {
                return Err(SwarmError::Api { action: action(), message: error });
            }
        }
        match to.image_id(image).await? {
            Some(copied) if copied == id => Ok(true),
            other => Err(SwarmError::Api {
                action: action(),
                message: format!(
                    "the target reports {} after the load, not {id}",
                    other.as_deref().unwrap_or("no image")
                ),
            }),
        }
    }

    pub async fn image_id(&self, reference: &str) -> Result<Option<String>, SwarmError> {
        match self.docker.inspect_image(reference).await {
            Ok(image) => Ok(image.id),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => {
                Err(SwarmError::Api { action: format!("inspecting image {reference}"), message: api_message(&e) })
            }
        }
    }
}

fn hex_digest(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_this_binary_s_loader_and_libc() {
        let exe = std::env::current_exe().unwrap();
        let files = image_files(&exe).unwrap();
        let dests: Vec<String> = files.iter().map(|(d, _)| d.display().to_string()).collect();
        assert!(dests.iter().any(|d| d.contains("ld-linux")), "{dests:?}");
        assert!(dests.iter().any(|d| d.contains("libc.so")), "{dests:?}");
        let context = build_context(&files[..1], false).unwrap();
        let mut archive = tar::Archive::new(context.as_slice());
        let names: Vec<String> =
            archive.entries().unwrap().map(|e| e.unwrap().path().unwrap().display().to_string()).collect();
        assert_eq!(names, ["Dockerfile", "rootfs.tar"]);
    }
}
