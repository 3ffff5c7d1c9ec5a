//! `geoctl image build`: the agent image, made from this very binary. No
//! base image and no registry: the build context is a tar made here, holding
//! the binary, the glibc libraries and loader it runs with (read from its own
//! memory map), the CA certificates, and a passwd entry for `nobody`; the
//! engine's builder unpacks it `FROM scratch`.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use bollard::query_parameters::BuildImageOptions;
use futures::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{api_message, is_not_found, Engine, SwarmError};

/// The uid and gid the agent runs as (`nobody`).
pub const AGENT_UID: u64 = 65534;
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
const DOCKERFILE: &str = "FROM scratch\n\
ADD rootfs.tar /\n\
ENV PATH=/usr/local/bin SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt\n\
USER 65534:65534\n\
WORKDIR /tmp\n\
CMD [\"geoctl\", \"--help\"]\n";

/// What the build produced.
#[derive(Debug, Clone, Serialize)]
pub struct Built {
    pub tag: String,
    pub id: String,
    pub files: usize,
    pub context_bytes: usize,
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
pub fn build_context(files: &[(PathBuf, PathBuf)]) -> std::io::Result<Vec<u8>> {
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
    let rootfs = rootfs.into_inner()?;

    let mut context = tar::Builder::new(Vec::new());
    append_file(&mut context, Path::new("Dockerfile"), DOCKERFILE.as_bytes(), 0o644)?;
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
    /// Builds the image from the running geoctl binary and tags it `tag`.
    pub async fn build_agent_image(&self, tag: &str, labels: HashMap<String, String>) -> Result<Built, SwarmError> {
        let io = |e: std::io::Error| SwarmError::Api {
            action: "preparing the image's files".into(),
            message: e.to_string(),
        };
        let binary = std::env::current_exe().map_err(io)?;
        let files = image_files(&binary).map_err(io)?;
        let context = build_context(&files).map_err(io)?;
        let context_bytes = context.len();
        let mut labels = labels;
        labels.insert("org.opencontainers.image.title".into(), "geoctl".into());
        labels.insert("org.opencontainers.image.version".into(), env!("CARGO_PKG_VERSION").into());
        labels.insert("io.geoctl.binary-sha256".into(), hex_digest(&std::fs::read(&binary).map_err(io)?));
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
        let id = match id {
            Some(id) => id,
            None => self.image_id(tag).await?.unwrap_or_default(),
        };
        Ok(Built { tag: tag.to_string(), id, files: files.len(), context_bytes })
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
        let context = build_context(&files[..1]).unwrap();
        let mut archive = tar::Archive::new(context.as_slice());
        let names: Vec<String> =
            archive.entries().unwrap().map(|e| e.unwrap().path().unwrap().display().to_string()).collect();
        assert_eq!(names, ["Dockerfile", "rootfs.tar"]);
    }
}
