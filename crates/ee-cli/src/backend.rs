//! The backend this binary was built with (`cuda` when that feature is on, else `flex`).

use burn::backend::Autodiff;

use crate::error::{CliError, Result};

/// The compute backend.
#[cfg(feature = "cuda")]
pub type Compute = burn::backend::Cuda;
/// The compute backend.
#[cfg(all(feature = "flex", not(feature = "cuda")))]
pub type Compute = burn::backend::Flex;

/// The training backend (with gradients).
pub type Train = Autodiff<Compute>;

/// The device type.
pub type Device = burn::tensor::ops::Device<Compute>;

/// Errors unless `run.backend` is the backend this binary was built with.
pub fn check_compiled(config: &crate::config::RunConfig) -> Result<()> {
    let built = crate::config::BackendName::compiled();
    let wanted = config.get().run.backend;
    if wanted != built {
        return Err(CliError::Backend {
            wanted: wanted.as_str(),
            built: built.as_str(),
        });
    }
    Ok(())
}

/// The device of index `index`: CUDA device `index`, or (on the CPU) the CPU itself.
fn device_of(index: usize) -> Device {
    #[cfg(feature = "cuda")]
    return burn::backend::cuda::CudaDevice { index };
    #[cfg(not(feature = "cuda"))]
    {
        let _ = index;
        Device::default()
    }
}

/// Opens the devices of `run.devices` (data-parallel training), each probed as
/// [`open_device`] probes the default one.
pub fn open_devices(config: &crate::config::RunConfig) -> Result<Vec<Device>> {
    config
        .get()
        .run
        .devices
        .indices()
        .into_iter()
        .map(|index| probe(|| device_of(index)))
        .collect()
}

/// Opens the default device, turning a panic (no GPU, no driver) into an error.
pub fn open_device() -> Result<Device> {
    probe(Device::default)
}

/// Opens a device and runs one tiny op on it, turning a panic (no GPU, no driver) into an
/// error.
fn probe(open: impl Fn() -> Device + std::panic::RefUnwindSafe) -> Result<Device> {
    let name = crate::config::BackendName::compiled().as_str();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(|| {
        let device = open();
        let probe = burn::tensor::Tensor::<Compute, 1>::zeros([1], &device);
        let _ = probe.into_data();
        device
    });
    std::panic::set_hook(previous);
    result.map_err(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "the device failed to start".into());
        CliError::Device {
            backend: name,
            message: message.lines().next().unwrap_or_default().to_string(),
        }
    })
}
