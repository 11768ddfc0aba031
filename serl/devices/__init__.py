"""Operator input devices behind one interface (`InterventionDevice.read() -> DeviceState`)."""

from serl.devices.base import IDLE, DeviceState, InterventionDevice
from serl.devices.scripted import ScriptedOperator, ScriptedOperatorConfig

__all__ = ["IDLE", "DeviceState", "InterventionDevice", "ScriptedOperator", "ScriptedOperatorConfig"]
