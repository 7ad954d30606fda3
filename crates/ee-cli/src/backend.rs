//! The backend this binary was built with: `cuda` when that feature is on, else `tch`
//! (LibTorch) when that one is, else `flex`.

// `Device` is `Copy` on some backends (tch) and not on others (cuda): the probes clone it.
#![allow(clippy::clone_on_copy)]

use burn::backend::Autodiff;

use crate::error::{CliError, Result};

/// The compute backend.
#[cfg(feature = "cuda")]
pub type Compute = burn::backend::Cuda;
/// The compute backend.
#[cfg(all(feature = "tch", not(feature = "cuda")))]
pub type Compute = burn::backend::LibTorch;
/// The compute backend.
#[cfg(all(feature = "flex", not(any(feature = "cuda", feature = "tch"))))]
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
fn device_of(index: usize, config: &crate::config::RunConfig) -> Result<Device> {
    let _ = config;
    #[cfg(feature = "cuda")]
    return Ok(burn::backend::cuda::CudaDevice { index });
    #[cfg(all(feature = "tch", not(feature = "cuda")))]
    return tch_device(index, config.get().run.tch_device);
    #[cfg(not(any(feature = "cuda", feature = "tch")))]
    {
        let _ = index;
        Ok(Device::default())
    }
}

/// The LibTorch device of `run.tch_device` (CUDA device `index`, or the CPU).
#[cfg(all(feature = "tch", not(feature = "cuda")))]
fn tch_device(index: usize, kind: crate::config::TchDevice) -> Result<Device> {
    use crate::config::TchDevice;
    use burn::backend::libtorch::LibTorchDevice;
    let gpus = if tch::Cuda::is_available() {
        tch::Cuda::device_count().max(0) as usize
    } else {
        0
    };
    let use_cuda = match kind {
        TchDevice::Cpu => false,
        TchDevice::Auto => gpus > 0,
        TchDevice::Cuda => true,
    };
    if !use_cuda {
        return Ok(LibTorchDevice::Cpu);
    }
    if index >= gpus {
        let why = if gpus == 0 {
            "this libtorch sees no CUDA GPU (a CPU-only build, or no driver)".to_string()
        } else {
            format!("this libtorch sees {gpus} CUDA GPU(s)")
        };
        return Err(CliError::Device {
            backend: "tch",
            message: format!(
                "run.tch_device = \"{}\" wants CUDA device {index}, but {why}; set \
                 run.tch_device = \"cpu\"",
                kind.as_str()
            ),
        });
    }
    Ok(LibTorchDevice::Cuda(index))
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
        .map(|index| {
            let device = device_of(index, config)?;
            probe(move || device.clone())
        })
        .collect()
}

/// Opens the run's first device (for `tch`, as `run.tch_device` says), turning a panic (no
/// GPU, no driver) into an error.
pub fn open_device_for(config: &crate::config::RunConfig) -> Result<Device> {
    let device = device_of(0, config)?;
    probe(move || device.clone())
}

/// Opens the default device (for `tch`: CUDA device 0 when present, else the CPU), turning a
/// panic (no GPU, no driver) into an error.
pub fn open_device() -> Result<Device> {
    #[cfg(all(feature = "tch", not(feature = "cuda")))]
    let device = tch_device(0, crate::config::TchDevice::Auto)?;
    #[cfg(not(all(feature = "tch", not(feature = "cuda"))))]
    let device = Device::default();
    probe(move || device.clone())
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
