//! What every front end does before a case runs — `kspec run`, `shell`, `bench` and the test
//! harnesses: build the images, choose the accelerator, make the run settings. One function,
//! so they cannot drift apart.

use std::path::PathBuf;

use super::settings::RunSettings;
use crate::image::{self, BuildOptions, Image, Kernel, Progress};
use crate::project::Project;
use crate::vm::{self, AccelChoice, AccelDecision, AccelError};

#[derive(Debug, Clone)]
pub struct PrepareOptions {
    pub accel: AccelChoice,
    /// Guest memory in MiB (None: the kernel list's, else the default).
    pub memory_mb: Option<u32>,
    /// A local kernel tree instead of the list's source (one kernel only).
    pub kernel_src: Option<PathBuf>,
}

impl Default for PrepareOptions {
    fn default() -> Self {
        PrepareOptions {
            accel: AccelChoice::Auto,
            memory_mb: None,
            kernel_src: None,
        }
    }
}

/// Built images and the settings to run them with.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub images: Vec<Image>,
    pub accel: AccelDecision,
    pub settings: RunSettings,
}

#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error(transparent)]
    Image(#[from] image::Error),
    #[error(transparent)]
    Accel(#[from] AccelError),
}

impl PrepareError {
    /// Whether the user asked for something impossible (as opposed to a broken machine).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            PrepareError::Image(image::Error::Usage(_))
                | PrepareError::Accel(AccelError::Unknown(_))
        )
    }
}

/// Decide the accelerator first (a bad choice fails before a long build), then build.
pub fn prepare(
    project: &Project,
    kernels: &[&Kernel],
    opts: &PrepareOptions,
    progress: &dyn Progress,
) -> Result<Prepared, PrepareError> {
    let accel = vm::accel::decide(opts.accel)?;
    let build = BuildOptions {
        kernel_src: opts.kernel_src.clone(),
        jobs: 0,
    };
    let images = image::build_images(project, kernels, &build, progress)?;
    progress.message(&format!("accelerator: {accel}"));
    let settings = RunSettings::new(accel.accel, opts.memory_mb);
    Ok(Prepared {
        images,
        accel,
        settings,
    })
}
