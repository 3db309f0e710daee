//! Writes one YAML file per CRD into the given directory (default `crds/manifests`).

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "crds/manifests".to_owned()),
    );
    std::fs::create_dir_all(&dir)?;
    for crd in infergate_crds::all_crds() {
        let path = dir.join(infergate_crds::file_name(&crd));
        std::fs::write(&path, infergate_crds::to_yaml(&crd)?)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
