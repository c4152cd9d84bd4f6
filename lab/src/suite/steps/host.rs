//! Host steps: loop devices for fio, made for the scenario and removed after it.

use cucumber::given;

use crate::suite::loop_device::{LoopDevice, devices_dir};
use crate::suite::world::LabWorld;

#[given(regex = r"^a (\d+) MiB loop device(?: formatted (\w+))?$")]
fn loop_device(world: &mut LabWorld, size: u64, filesystem: String) -> Result<(), String> {
    let dir = devices_dir(&world.ctx.state);
    world.loop_device = Some(LoopDevice::create(size, Some(filesystem.as_str()).filter(|fs| !fs.is_empty()), &dir)?);
    Ok(())
}

#[given(regex = r"^a (\d+) MiB loop device(?: formatted (\w+))? as the baseline$")]
fn baseline_loop_device(world: &mut LabWorld, size: u64, filesystem: String) -> Result<(), String> {
    let dir = devices_dir(&world.ctx.state);
    world.baseline_device =
        Some(LoopDevice::create(size, Some(filesystem.as_str()).filter(|fs| !fs.is_empty()), &dir)?);
    Ok(())
}
