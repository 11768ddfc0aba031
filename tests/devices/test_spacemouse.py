"""The SpaceMouse device with pyspacemouse's real decoding: raw HID reports go in through a fake HID
backend (the layer where pyspacemouse opens and reads easyhid devices), our DeviceState comes out.

Provenance of the reports: each is built from pyspacemouse's own device specification table
(`pyspacemouse.get_device_specs()`, its `devices.toml`), normalised to raw HID axes with
pyspacemouse's `apply_axis_convention(..., AxisConvention.HID)`: for each axis the report id
(channel), the two little-endian bytes of its signed 16-bit value and the scale, and for each button
its report id, byte and bit. The SpaceMouse Compact sends translation (report 1) and rotation
(report 2) separately; the SpaceMouse Wireless sends all six axes in report 1. Physical meaning
follows the USB HID usage tables: +x right, +y toward the user, +z down, and rotations about those
axes (+Rz clockwise seen from above).
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pyspacemouse
import pytest
from easyhid import HIDException

from serl.devices.spacemouse import (
    AXES,
    SpaceMouse,
    SpaceMouseConfig,
    SpaceMouseNotFound,
    apply_dead_zone,
)

MODELS = ["SpaceMouseCompact", "SpaceMouseWireless"]


def hid_spec(model):
    raw = pyspacemouse.get_device_specs()[model]
    return pyspacemouse.apply_axis_convention(raw, pyspacemouse.AxisConvention.HID)


def reports(model, hid_axes: dict[str, float] = (),
            buttons: tuple[str, ...] | None = None) -> list[bytes]:
    """The HID reports a `model` sends for deflections `hid_axes` (raw HID axes, in units of full
    scale) and, if given, the set of buttons down."""
    spec, out = hid_spec(model), {}
    for axis, value in dict(hid_axes).items():
        m = spec.mappings[axis]
        data = out.setdefault(m.channel, bytearray(spec.bytes_to_read))
        data[0] = m.channel
        raw = int(round(value * spec.axis_scale / m.scale))
        data[m.byte1], data[m.byte2] = raw & 0xFF, (raw >> 8) & 0xFF
    if buttons is not None:
        for name, b in zip(spec.button_names, spec.button_specs, strict=True):
            data = out.setdefault(b.channel, bytearray(spec.bytes_to_read))
            data[0] = b.channel
            if name in buttons:
                data[b.byte] |= 1 << b.bit
    return [bytes(d) for d in out.values()]


class FakeHID:
    """A HID device as easyhid presents it to pyspacemouse: ids and strings, open/close,
    non-blocking reads of queued reports. Once unplugged, reads and opens fail as easyhid's do for
    a removed device."""

    def __init__(self, model=None, vendor_id=0, product_id=0, product="SpaceMouse",
                 path="/dev/hidraw0"):
        if model is not None:
            vendor_id, product_id = hid_spec(model).vendor_id, hid_spec(model).product_id
        self.vendor_id, self.product_id = vendor_id, product_id
        self.product_string, self.path = product, path
        self.manufacturer_string, self.release_number = "3Dconnexion", 0x0100
        self.serial_number = "S1"
        self.queue: list[bytes] = []
        self.unplugged = self.opened = False
        self.idle_reads = 0  # reads that found nothing waiting

    def open(self):
        if self.unplugged:
            raise HIDException("Failed to open device")
        self.opened = True

    def close(self):
        self.opened = False

    def set_nonblocking(self, enable):
        assert enable is True

    def read(self, size=64, timeout=None):
        if self.unplugged:
            raise HIDException("Failed to read from HID device: -1")
        if not self.queue:
            self.idle_reads += 1
            return bytearray()
        return bytearray(self.queue.pop(0)[:size].ljust(size, b"\0"))


class FakeBus:
    """The machine's HID devices: what enumeration returns now."""

    def __init__(self, *devices):
        self.devices = list(devices)

    def __call__(self):
        return [d for d in self.devices if not d.unplugged]


def wait_for(predicate, timeout=3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return False


@pytest.fixture
def opened():
    devices = []

    def make(model, cfg=None, **fake):
        hid = FakeHID(model, **fake)
        mouse = SpaceMouse(cfg or SpaceMouseConfig(reconnect_s=0.02, poll_s=0.001), FakeBus(hid))
        devices.append(mouse)
        return mouse, hid

    yield make
    for mouse in devices:
        mouse.close()
        assert not mouse._thread.is_alive()


def settle(mouse, hid):
    """The device's state once the reader has decoded every queued report
    (it reads on only when done)."""
    assert wait_for(lambda: not hid.queue)
    idle = hid.idle_reads
    assert wait_for(lambda: hid.idle_reads > idle)
    return mouse.read()


@pytest.mark.timeout(20)
@pytest.mark.parametrize("model", MODELS)
def test_decoding_per_model_maps_to_the_base_frame(opened, model):
    mouse, hid = opened(model)
    # Default rig mapping: operator behind the robot looking along base x. Pushing the puck away
    # (HID -y) moves the TCP forward (+x), right (HID +x) moves it to the robot's right (-y),
    # lifting (HID -z) moves it up.
    hid.queue += reports(model, {"x": 0.55, "y": -0.55, "z": -1.0,
                                 "roll": 0.0, "pitch": 0.0, "yaw": -0.55})
    state = settle(mouse, hid)
    moved = (0.55 - 0.1) / 0.9
    np.testing.assert_allclose(state.action, [moved, -moved, 1.0, 0, 0, moved, 0], atol=0.01)
    assert state.active and state.buttons == () and state.extra["connected"]
    # Tilting about the HID x axis (toward the user's right) is a rotation about base -y;
    # about HID y is about -x.
    hid.queue += reports(model, {"x": 0, "y": 0, "z": 0, "roll": 0.55, "pitch": 0.0, "yaw": 0})
    np.testing.assert_allclose(settle(mouse, hid).action, [0, 0, 0, 0, -moved, 0, 0], atol=0.01)
    hid.queue += reports(model, {"x": 0, "y": 0, "z": 0, "roll": 0.0, "pitch": 0.55, "yaw": 0})
    np.testing.assert_allclose(settle(mouse, hid).action, [0, 0, 0, -moved, 0, 0, 0], atol=0.01)


@pytest.mark.timeout(20)
@pytest.mark.parametrize("model", MODELS)
def test_dead_zone_and_gripper_buttons(opened, model):
    mouse, hid = opened(model)
    hid.queue += reports(model, {"x": 0.08, "y": -0.05, "z": 0.09,
                                 "roll": 0.05, "pitch": -0.08, "yaw": 0.02})
    state = settle(mouse, hid)
    assert not state.active and not np.any(state.action)  # a puck at rest is not a take-over
    hid.queue += reports(model, buttons=("LEFT",))
    state = settle(mouse, hid)
    # LEFT closes the gripper, and takes over while held
    assert state.active and state.action[6] == -1.0
    hid.queue += reports(model, buttons=())
    settle(mouse, hid)
    # a click between two reads
    hid.queue += reports(model, buttons=("RIGHT",)) + reports(model, buttons=())
    state = settle(mouse, hid)
    assert state.active and state.action[6] == 1.0  # not lost
    state = mouse.read()
    assert not state.active and state.action[6] == 0.0  # and reported once


@pytest.mark.timeout(20)
def test_control_buttons_show_while_held_and_once_after_a_click(opened):
    cfg = SpaceMouseConfig(buttons=(("LEFT", "mark_success"), ("RIGHT", "pause")), poll_s=0.001)
    mouse, hid = opened("SpaceMouseWireless", cfg)
    hid.queue += reports("SpaceMouseWireless", buttons=("LEFT",))
    assert settle(mouse, hid).buttons == ("mark_success",)
    assert mouse.read().buttons == ("mark_success",)  # still held: on every read
    assert not mouse.read().active  # controls alone do not take over
    hid.queue += (reports("SpaceMouseWireless", buttons=("RIGHT",))
                  + reports("SpaceMouseWireless", buttons=()))
    # the click; mark_success was released (and reported)
    assert settle(mouse, hid).buttons == ("pause",)
    assert mouse.read().buttons == ()


@pytest.mark.timeout(20)
def test_unplug_reads_idle_and_replug_reconnects(opened):
    mouse, hid = opened("SpaceMouseCompact")
    hid.queue += reports("SpaceMouseCompact", {"x": 0.9, "y": 0, "z": 0})
    assert settle(mouse, hid).active
    hid.unplugged = True
    assert wait_for(lambda: not mouse.read().extra["connected"])
    state = mouse.read()
    assert not state.active and not np.any(state.action)  # the operator's last push is not replayed
    hid.unplugged = False  # plugged back
    assert wait_for(lambda: mouse.read().extra["connected"]) and mouse.reconnects == 1
    hid.queue += reports("SpaceMouseCompact", {"x": 0, "y": 0, "z": -0.9})
    assert settle(mouse, hid).action[2] > 0.8


@pytest.mark.timeout(20)
def test_no_matching_device_lists_the_hid_devices_found():
    keyboard = FakeHID(vendor_id=0x046D, product_id=0xC31C, product="USB Keyboard",
                       path="/dev/hidraw3")
    with pytest.raises(SpaceMouseNotFound, match=r"USB Keyboard.*046d:c31c.*/dev/hidraw3"):
        SpaceMouse(SpaceMouseConfig(), FakeBus(keyboard))
    compact = FakeHID("SpaceMouseCompact")
    with pytest.raises(SpaceMouseNotFound, match="no SpaceMouseWireless connected.*SpaceMouse"):
        SpaceMouse(SpaceMouseConfig(model="SpaceMouseWireless"), FakeBus(compact))
    with pytest.raises(ValueError, match="no buttons.*'MENU'"):
        SpaceMouse(SpaceMouseConfig(buttons=(("MENU", "pause"),)), FakeBus(compact))
    with pytest.raises(ValueError, match="unknown roles"):
        SpaceMouseConfig(buttons=(("LEFT", "pasue"),))


def test_dead_zone_is_continuous():
    values = np.array([-1.0, -0.1, -0.05, 0.0, 0.1, 0.1001, 0.55, 1.0])
    np.testing.assert_allclose(apply_dead_zone(values, 0.1), [-1, 0, 0, 0, 0, 0.0001 / 0.9, 0.5, 1],
                               atol=1e-9)


def stream(hid, reports_, seconds):
    """Queue `reports_` every 10 ms for `seconds`: a device that keeps sending."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        hid.queue += reports_
        time.sleep(0.01)


@pytest.mark.timeout(20)
def test_a_stream_of_zero_reports_warns_once_about_the_receiver(opened, caplog):
    caplog.set_level(logging.WARNING, logger="serl.devices.spacemouse")
    cfg = SpaceMouseConfig(poll_s=0.001, zero_warn_s=0.3)
    mouse, hid = opened("SpaceMouseWireless", cfg)
    zeros = reports("SpaceMouseWireless", dict.fromkeys(AXES, 0.0), buttons=())
    stream(hid, zeros, 0.8)  # connected, reporting, and every report empty
    warnings = [r.getMessage() for r in caplog.records if "all zero" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "receiver" in warnings[0] and "paired" in warnings[0] and "check-rig" in warnings[0]
    assert not mouse.read().active


@pytest.mark.timeout(20)
def test_a_live_or_silent_spacemouse_does_not_warn(opened, caplog):
    caplog.set_level(logging.WARNING, logger="serl.devices.spacemouse")
    cfg = SpaceMouseConfig(poll_s=0.001, zero_warn_s=0.2)
    moved, hid = opened("SpaceMouseCompact", cfg)
    hid.queue += reports("SpaceMouseCompact", {"x": 0.5, "y": 0, "z": 0})
    assert settle(moved, hid).active
    stream(hid, reports("SpaceMouseCompact", {"x": 0, "y": 0, "z": 0}), 0.4)  # then at rest
    silent, _ = opened("SpaceMouseCompact", cfg)  # nobody touches it: no reports at all
    time.sleep(0.4)
    assert not [r for r in caplog.records if "all zero" in r.getMessage()]
