//! `lijian keygen`: the platform's RSA key pair, the private half readable by
//! its owner only.

use std::path::Path;

use anyhow::{bail, Context};
use lijian_core::signing::RsaPrivateKey;

pub fn keygen(out: &Path) -> anyhow::Result<()> {
    let key = RsaPrivateKey::generate()?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let private = out.join("private.pem");
    let public = out.join("public.pem");
    if private.exists() {
        bail!("{} already exists; refusing to overwrite a key", private.display());
    }
    write_private(&private, &key.to_pkcs8_pem()?)?;
    std::fs::write(&public, key.public_key_pem()?).with_context(|| format!("writing {}", public.display()))?;
    println!("wrote {} (keep secret) and {}", private.display(), public.display());
    Ok(())
}

fn write_private(path: &Path, pem: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(pem.as_bytes())?;
    Ok(())
}
