//! Host steps: loop devices for fio, made for the scenario and removed after it.

use cucumber::given;

use crate::suite::loop_device::LoopDevice;
use crate::suite::world::LabWorld;

#[given(regex = r"^a (\d+) MiB loop device(?: formatted (\w+))?$")]
fn loop_device(world: &mut LabWorld, size: u64, filesystem: String) -> Result<(), String> {
    world.loop_device = Some(LoopDevice::create(size, Some(filesystem.as_str()).filter(|fs| !fs.is_empty()))?);
    Ok(())
}

#[given(regex = r"^a (\d+) MiB loop device(?: formatted (\w+))? as the baseline$")]
fn baseline_loop_device(world: &mut LabWorld, size: u64, filesystem: String) -> Result<(), String> {
    world.baseline_device = Some(LoopDevice::create(size, Some(filesystem.as_str()).filter(|fs| !fs.is_empty()))?);
    Ok(())
}
