"""The gamepad device against recorded kernel input events, read through python-evdev's own code.

Provenance. Each pad's node (name, ids, key codes, axis ranges) is what its driver registers: the
Xbox One S pad as xpad registers it (drivers/input/joystick/xpad.c, `xpad_set_up_abs`: sticks
-32768..32767 fuzz 16 flat 128, Xbox One triggers 0..1023, hat -1..1; buttons BTN_A, BTN_B, BTN_X,
BTN_Y, ...), the DualSense as hid-playstation does (drivers/hid/hid-playstation.c,
`ps_gamepad_create`: sticks and triggers 0..255, sticks resting at 128, hat -1..1; positional
BTN_SOUTH/EAST/NORTH/WEST and digital BTN_TL2/BTN_TR2 besides the analog triggers), with the
DualSense's motion-sensor node beside it. Each recorded frame is what the driver emits for one USB
report (`xpadone_process_packet`, `dualsense_parse_report`): the changed values, then SYN_REPORT;
xpad negates the stick's y (up is negative), and sends the west button X as BTN_X, which is
BTN_NORTH's code.

The one fake is the event file: a pipe carrying the events as the kernel's `struct input_event`
(linux/input.h: struct timeval, __u16 type, __u16 code, __s32 value), read by evdev's
`EventIO.read_one` (its C `device_read`), the method a real `evdev.InputDevice` reads with.
Unplugged, a read fails with ENODEV, as the kernel answers for a removed device.
"""

from __future__ import annotations

import errno
import logging
import os
import struct
import time

import numpy as np
import pytest
from evdev import ecodes
from evdev.device import AbsInfo, DeviceInfo
from evdev.eventio import EventIO

from serl.devices import DeviceConfig, check_device_controls
from serl.devices import gamepad_input as codes
from serl.devices.base import CONTROLS
from serl.devices.gamepad import Gamepad, GamepadConfig, GamepadNotFound
from serl.devices.gamepad_input import EV_ABS, EV_KEY, EV_SYN, SYN_DROPPED, SYN_REPORT

SYN = (EV_SYN, SYN_REPORT, 0)
STICK_XBOX, TRIGGER_XBOX_ONE, HAT = (-32768, 32767, 16, 128), (0, 1023, 0, 0), (-1, 1, 0, 0)
BYTE = (0, 255, 0, 0)
A = ecodes


class Node:
    """One /dev/input/eventN node as its driver registers it."""

    def __init__(self, name, vendor, product, keys, axes, rest):
        self.name, self.vendor, self.product = name, vendor, product
        self.keys, self.axes, self.rest = keys, axes, rest


XBOX_ONE = Node(
    "Microsoft X-Box One S pad", 0x045E, 0x02EA,
    [A.BTN_A, A.BTN_B, A.BTN_X, A.BTN_Y, A.BTN_START, A.BTN_SELECT, A.BTN_THUMBL, A.BTN_THUMBR,
     A.BTN_TL, A.BTN_TR, A.BTN_MODE],
    {A.ABS_X: STICK_XBOX, A.ABS_Y: STICK_XBOX, A.ABS_RX: STICK_XBOX, A.ABS_RY: STICK_XBOX,
     A.ABS_Z: TRIGGER_XBOX_ONE, A.ABS_RZ: TRIGGER_XBOX_ONE, A.ABS_HAT0X: HAT, A.ABS_HAT0Y: HAT},
    {},
)  # fmt: skip
DUALSENSE = Node(
    "Sony Interactive Entertainment DualSense Wireless Controller", 0x054C, 0x0CE6,
    [A.BTN_WEST, A.BTN_NORTH, A.BTN_EAST, A.BTN_SOUTH, A.BTN_TL, A.BTN_TR, A.BTN_TL2, A.BTN_TR2,
     A.BTN_SELECT, A.BTN_START, A.BTN_THUMBL, A.BTN_THUMBR, A.BTN_MODE],
    {A.ABS_X: BYTE, A.ABS_Y: BYTE, A.ABS_Z: BYTE, A.ABS_RX: BYTE, A.ABS_RY: BYTE, A.ABS_RZ: BYTE,
     A.ABS_HAT0X: HAT, A.ABS_HAT0Y: HAT},
    {A.ABS_X: 128, A.ABS_Y: 128, A.ABS_RX: 128, A.ABS_RY: 128},
)  # fmt: skip
DUALSENSE_MOTION = Node(
    "Sony Interactive Entertainment DualSense Wireless Controller Motion Sensors", 0x054C, 0x0CE6,
    [], {code: (-32768, 32767, 0, 0) for code in (A.ABS_X, A.ABS_Y, A.ABS_Z, A.ABS_RX)}, {},
)  # fmt: skip

# The same gestures as each driver reports them (frames of (type, code, value), SYN-terminated).
RECORDED = {
    "xbox": {
        "rest": [(EV_ABS, A.ABS_X, 2100), (EV_ABS, A.ABS_Y, -1800), (EV_ABS, A.ABS_RX, -2500),
                 (EV_ABS, A.ABS_RY, 900), SYN],  # worn sticks off centre
        "left_up_half": [(EV_ABS, A.ABS_X, 0), (EV_ABS, A.ABS_Y, -16384), (EV_ABS, A.ABS_RX, 0),
                         (EV_ABS, A.ABS_RY, 0), SYN],
        "left_right_full": [(EV_ABS, A.ABS_X, 32767), (EV_ABS, A.ABS_Y, 0), SYN],
        "right_trigger_full": [(EV_ABS, A.ABS_X, 0), (EV_ABS, A.ABS_RZ, 1023), SYN],
        "right_stick_right_half": [(EV_ABS, A.ABS_RX, 16384), (EV_ABS, A.ABS_RZ, 0), SYN],
        "dpad_right": [(EV_ABS, A.ABS_HAT0X, 1), (EV_ABS, A.ABS_RX, 0), SYN],
        "release_all": [(EV_ABS, A.ABS_HAT0X, 0), SYN],
        "south": [(EV_KEY, A.BTN_A, 1), SYN], "south_up": [(EV_KEY, A.BTN_A, 0), SYN],
        "east": [(EV_KEY, A.BTN_B, 1), SYN], "east_up": [(EV_KEY, A.BTN_B, 0), SYN],
        "west": [(EV_KEY, A.BTN_X, 1), SYN], "west_up": [(EV_KEY, A.BTN_X, 0), SYN],
        "north": [(EV_KEY, A.BTN_Y, 1), SYN], "north_up": [(EV_KEY, A.BTN_Y, 0), SYN],
        "tl": [(EV_KEY, A.BTN_TL, 1), SYN], "tl_up": [(EV_KEY, A.BTN_TL, 0), SYN],
        "start": [(EV_KEY, A.BTN_START, 1), SYN], "start_up": [(EV_KEY, A.BTN_START, 0), SYN],
    },
    "dualsense": {
        "rest": [(EV_ABS, A.ABS_X, 131), (EV_ABS, A.ABS_Y, 125), (EV_ABS, A.ABS_RX, 133),
                 (EV_ABS, A.ABS_RY, 124), SYN],
        "left_up_half": [(EV_ABS, A.ABS_X, 128), (EV_ABS, A.ABS_Y, 64), (EV_ABS, A.ABS_RX, 128),
                         (EV_ABS, A.ABS_RY, 128), SYN],
        "left_right_full": [(EV_ABS, A.ABS_X, 255), (EV_ABS, A.ABS_Y, 128), SYN],
        "right_trigger_full": [(EV_ABS, A.ABS_X, 128), (EV_ABS, A.ABS_RZ, 255),
                               (EV_KEY, A.BTN_TR2, 1), SYN],
        "right_stick_right_half": [(EV_ABS, A.ABS_RX, 192), (EV_ABS, A.ABS_RZ, 0),
                                   (EV_KEY, A.BTN_TR2, 0), SYN],
        "dpad_right": [(EV_ABS, A.ABS_RX, 128), (EV_ABS, A.ABS_HAT0X, 1), SYN],
        "release_all": [(EV_ABS, A.ABS_HAT0X, 0), SYN],
        "south": [(EV_KEY, A.BTN_SOUTH, 1), SYN], "south_up": [(EV_KEY, A.BTN_SOUTH, 0), SYN],
        "east": [(EV_KEY, A.BTN_EAST, 1), SYN], "east_up": [(EV_KEY, A.BTN_EAST, 0), SYN],
        "west": [(EV_KEY, A.BTN_WEST, 1), SYN], "west_up": [(EV_KEY, A.BTN_WEST, 0), SYN],
        "north": [(EV_KEY, A.BTN_NORTH, 1), SYN], "north_up": [(EV_KEY, A.BTN_NORTH, 0), SYN],
        "tl": [(EV_KEY, A.BTN_TL, 1), SYN], "tl_up": [(EV_KEY, A.BTN_TL, 0), SYN],
        "start": [(EV_KEY, A.BTN_START, 1), SYN], "start_up": [(EV_KEY, A.BTN_START, 0), SYN],
    },
}  # fmt: skip
PADS = {"xbox": XBOX_ONE, "dualsense": DUALSENSE}


class PipeDevice(EventIO):
    """An event node read the way python-evdev's `InputDevice` reads one (`EventIO.read_one` on a
    non-blocking fd), its file a pipe; ids, capabilities and the kernel's current state (absinfo
    values, keys down) as EVIOCGABS/EVIOCGKEY would answer them."""

    def __init__(self, node: Node, path: str):
        self.node, self.path, self.name = node, path, node.name
        self.info = DeviceInfo(bustype=0x03, vendor=node.vendor, product=node.product, version=1)
        self.fd, self._writer = os.pipe()
        os.set_blocking(self.fd, False)
        self.values = {code: node.rest.get(code, 0) for code in node.axes}
        self.down: set[int] = set()
        self.unplugged, self.opens = False, 0

    def capabilities(self, verbose=False, absinfo=True):
        axes = [(code, self.absinfo(code)) for code in sorted(self.node.axes)]
        caps = {EV_SYN: [0, 1, 3], EV_ABS: axes}
        return {**caps, EV_KEY: sorted(self.node.keys)} if self.node.keys else caps

    def absinfo(self, code):
        return AbsInfo(self.values[code], *self.node.axes[code], 0)

    def active_keys(self, verbose=False):
        return sorted(self.down)

    def read_one(self):
        if self.unplugged:
            raise OSError(errno.ENODEV, "No such device")
        return super().read_one()

    def lose(self, *events):
        """Events the kernel applied whose copies this client lost (its buffer overflowed)."""
        for kind, code, value in events:
            self._apply(kind, code, value)

    def emit(self, *events):
        """Write events as the kernel delivers them: 24-byte `struct input_event`s."""
        for kind, code, value in events:
            self._apply(kind, code, value)
            now = time.time()
            sec, usec = int(now), int(now % 1 * 1e6)
            os.write(self._writer, struct.pack("llHHi", sec, usec, kind, code, value))

    def _apply(self, kind, code, value):
        if kind == EV_ABS:
            self.values[code] = value
        elif kind == EV_KEY:
            (self.down.add if value else self.down.discard)(code)

    def close(self):
        pass  # the pipe lives until `release` (discovery closes and reopens nodes)

    def release(self):
        os.close(self.fd)
        os.close(self._writer)


class FakeInput:
    """The machine's /dev/input as a backend sees it. Opening a node this user may not read fails
    as os.open does; a node that was unplugged is gone from the listing."""

    def __init__(self, *devices: PipeDevice, denied: tuple[str, ...] = ()):
        self.devices, self.denied, self.listings = list(devices), denied, 0

    def list_devices(self):
        self.listings += 1
        return sorted([d.path for d in self.devices if not d.unplugged] + list(self.denied))

    def open(self, path):
        if path in self.denied:
            raise PermissionError(errno.EACCES, "Permission denied", path)
        for device in self.devices:
            if device.path == path and not device.unplugged:
                device.opens += 1
                return device
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)


def wait_for(predicate, timeout=3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.002)
    return False


@pytest.fixture
def plugged():
    made = []

    def make(pad: str, cfg: GamepadConfig | None = None):
        device = PipeDevice(PADS[pad], "/dev/input/event5")
        bus = FakeInput(PipeDevice(DUALSENSE_MOTION, "/dev/input/event4"), device)
        gamepad = Gamepad(cfg or GamepadConfig(poll_s=0.01, reconnect_s=0.01), bus)
        made.append((gamepad, bus))
        return gamepad, device, bus

    yield make
    for gamepad, bus in made:
        gamepad.close()
        assert not gamepad._thread.is_alive()
        for device in bus.devices:
            device.release()


def play(gamepad, device, *gestures, pad):
    """Emit recorded frames and return the state once the reader decoded them all."""
    frames = gamepad.frames
    for gesture in gestures:
        device.emit(*RECORDED[pad][gesture])
    assert wait_for(lambda: gamepad.frames >= frames + len(gestures))
    return gamepad.read()


def test_event_codes_are_the_kernels():
    for name in ("EV_SYN", "EV_KEY", "EV_ABS", "SYN_REPORT", "SYN_DROPPED", "ABS_X", "ABS_Y",
                 "ABS_Z", "ABS_RX", "ABS_RY", "ABS_RZ", "ABS_HAT0X", "ABS_HAT0Y", "BTN_SOUTH",
                 "BTN_EAST", "BTN_NORTH", "BTN_WEST", "BTN_TL", "BTN_TR", "BTN_TL2", "BTN_TR2",
                 "BTN_SELECT", "BTN_START", "BTN_MODE", "BTN_THUMBL", "BTN_THUMBR", "BTN_DPAD_UP",
                 "BTN_DPAD_DOWN", "BTN_DPAD_LEFT", "BTN_DPAD_RIGHT"):  # fmt: skip
        assert getattr(codes, name) == getattr(ecodes, name), name


@pytest.mark.timeout(20)
@pytest.mark.parametrize("pad", ["xbox", "dualsense"])
def test_sticks_triggers_and_dpad_map_to_the_base_frame(plugged, pad):
    gamepad, device, _ = plugged(pad)
    state = play(gamepad, device, "rest", pad=pad)
    # off-centre sticks at rest do not take over
    assert not state.active and not np.any(state.action) and state.extra["connected"]
    half = (0.5 - 0.15) / 0.85  # half deflection past the default dead zone
    # Default map, operator behind the robot: left stick away = forward (+x), right = the robot's
    # right (-y); right trigger up (+z); right stick right = roll; d-pad right = yaw clockwise.
    expected = {
        "left_up_half": [half, 0, 0, 0, 0, 0, 0],
        "left_right_full": [0, -1, 0, 0, 0, 0, 0],
        "right_trigger_full": [0, 0, 1, 0, 0, 0, 0],
        "right_stick_right_half": [0, 0, 0, half, 0, 0, 0],
        "dpad_right": [0, 0, 0, 0, 0, -1, 0],
    }
    for gesture, action in expected.items():
        state = play(gamepad, device, gesture, pad=pad)
        np.testing.assert_allclose(state.action, action, atol=0.01, err_msg=gesture)
        assert state.active and state.buttons == ()
    state = play(gamepad, device, "release_all", pad=pad)
    assert not state.active and not np.any(state.action)


@pytest.mark.timeout(20)
@pytest.mark.parametrize("pad", ["xbox", "dualsense"])
def test_dead_zone_and_scaling_are_per_rig(plugged, pad):
    cfg = GamepadConfig(dead_zone=0.3, translation_scale=0.5, rotation_scale=0.25, poll_s=0.01)
    gamepad, device, _ = plugged(pad, cfg)
    assert not play(gamepad, device, "rest", pad=pad).active
    state = play(gamepad, device, "left_up_half", pad=pad)
    np.testing.assert_allclose(state.action[0], (0.5 - 0.3) / 0.7 * 0.5, atol=0.01)
    state = play(gamepad, device, "left_right_full", "dpad_right", pad=pad)
    np.testing.assert_allclose(state.action, [0, -0.5, 0, 0, 0, -0.25, 0], atol=0.01)


@pytest.mark.timeout(20)
@pytest.mark.parametrize("pad", ["xbox", "dualsense"])
def test_one_button_map_on_both_layouts(plugged, pad):
    gamepad, device, _ = plugged(pad)
    assert gamepad.controls == frozenset(CONTROLS)  # a session runs from the pad alone
    # X / Square (west) and Y / Triangle (north), though xpad and hid-playstation code them apart
    assert play(gamepad, device, "west", pad=pad).buttons == ("mark_failure",)
    state = play(gamepad, device, "west_up", "north", pad=pad)
    assert state.buttons == ("mark_success",) and not state.active  # controls alone: no take-over
    assert gamepad.read().buttons == ("mark_success",)  # still held: on every read
    play(gamepad, device, "north_up", pad=pad)
    gamepad.read()
    # A / Cross closes the gripper and takes over while held
    state = play(gamepad, device, "south", pad=pad)
    assert state.active and state.action[6] == -1.0
    play(gamepad, device, "south_up", pad=pad)
    gamepad.read()
    # a click of B / Circle between two reads opens, once; so does a click of Start (pause)
    state = play(gamepad, device, "east", "east_up", "start", "start_up", pad=pad)
    assert state.active and state.action[6] == 1.0 and state.buttons == ("pause",)
    state = gamepad.read()
    assert not state.active and state.action[6] == 0.0 and state.buttons == ()
    # LB / L1 held: the operator keeps control with the sticks at rest
    state = play(gamepad, device, "tl", pad=pad)
    assert state.active and not np.any(state.action)


@pytest.mark.timeout(20)
def test_deadman_moves_only_while_takeover_is_held(plugged):
    gamepad, device, _ = plugged("dualsense", GamepadConfig(deadman=True, poll_s=0.01))
    state = play(gamepad, device, "left_up_half", pad="dualsense")
    assert not state.active and not np.any(state.action)
    state = play(gamepad, device, "tl", pad="dualsense")
    assert state.active and state.action[0] > 0.4


@pytest.mark.timeout(20)
def test_syn_dropped_resyncs_from_the_kernels_state(plugged):
    gamepad, device, _ = plugged("xbox")
    assert play(gamepad, device, "left_up_half", pad="xbox").action[0] > 0.4
    # the client's buffer overflowed: the stick went back and A went down, those events lost
    device.lose((EV_ABS, A.ABS_Y, 0), (EV_KEY, A.BTN_A, 1))
    frames = gamepad.frames
    device.emit((EV_SYN, SYN_DROPPED, 0), (EV_ABS, A.ABS_RX, 300), SYN)
    assert wait_for(lambda: gamepad.frames > frames)
    state = gamepad.read()
    assert state.action[0] == 0.0 and state.action[6] == -1.0 and state.active


@pytest.mark.timeout(20)
def test_unplug_reads_idle_logs_boundedly_and_replug_reconnects(plugged, caplog):
    cfg = GamepadConfig(poll_s=0.01, reconnect_s=0.005, missing_log_s=30.0)
    gamepad, device, bus = plugged("dualsense", cfg)
    assert play(gamepad, device, "left_up_half", pad="dualsense").active
    caplog.set_level(logging.WARNING, logger="serl.devices.gamepad")
    device.unplugged = True
    assert wait_for(lambda: not gamepad.read().extra["connected"])
    listings = bus.listings
    for _ in range(50):  # never raises, never replays the operator's last push
        state = gamepad.read()
        assert not state.active and not np.any(state.action)
        time.sleep(0.004)
    assert bus.listings > listings + 5  # it keeps looking...
    lines = [r for r in caplog.records if r.name == "serl.devices.gamepad"]
    assert len(lines) == 1 and "unplugged" in lines[0].getMessage()  # ...but logs once
    # plugged back: the kernel makes a new node
    back = PipeDevice(DUALSENSE, "/dev/input/event7")
    bus.devices.append(back)
    assert wait_for(lambda: gamepad.read().extra["connected"]) and gamepad.reconnects == 1
    state = play(gamepad, back, "right_trigger_full", pad="dualsense")
    assert state.active and state.action[2] == 1.0


@pytest.mark.timeout(20)
def test_no_gamepad_lists_the_input_devices_and_unreadable_ones():
    motion = PipeDevice(DUALSENSE_MOTION, "/dev/input/event4")
    bus = FakeInput(motion, denied=("/dev/input/event2",))
    with pytest.raises(GamepadNotFound, match=r"Motion Sensors at /dev/input/event4.*may not open "
                       r"1 event devices \(/dev/input/event2\).*udev"):
        Gamepad(GamepadConfig(), bus)
    pad = PipeDevice(DUALSENSE, "/dev/input/event5")
    with pytest.raises(GamepadNotFound, match="no gamepad matching 'xbox'.*DualSense"):
        Gamepad(GamepadConfig(device="xbox"), FakeInput(pad))
    by_path = Gamepad(GamepadConfig(device="/dev/input/event5"), FakeInput(motion, pad))
    assert by_path.read().extra["connected"]
    by_path.close()
    for device in (motion, pad):
        device.release()


def test_config_is_checked_and_the_factory_knows_the_gamepad():
    with pytest.raises(ValueError, match="unknown.*'start: pasue'"):
        GamepadConfig(buttons=(("start", "pasue"),))
    with pytest.raises(ValueError, match="unknown.*'l1: close'"):
        GamepadConfig(buttons=(("l1", "close"),))
    with pytest.raises(ValueError, match="six distinct"):
        GamepadConfig(axes=("left_y", "left_y", "", "", "", ""))
    with pytest.raises(ValueError, match="layout"):
        GamepadConfig(layout="nintendo")
    assert DeviceConfig(kind="gamepad").controls == frozenset(CONTROLS)
    check_device_controls(DeviceConfig(kind="gamepad"), {"confirm_reset": "the reset"})
    bare = DeviceConfig(kind="gamepad", gamepad=GamepadConfig(buttons=(("south", "close"),)))
    with pytest.raises(ValueError, match="confirm_reset.*device.gamepad.buttons"):
        check_device_controls(bare, {"confirm_reset": "the reset"})
