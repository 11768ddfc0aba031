"""The safety box and orientation cone: whatever goes in, what comes out is inside."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serl import geometry as g
from serl.robot.safety import (
    SafetyLimits,
    clip_orientation,
    clip_position,
    clip_target,
    cone_coordinates,
    inside,
)

LIMITS = SafetyLimits(xyz_low=(0.3, -0.2, 0.02), xyz_high=(0.7, 0.2, 0.4), cone_half_angle=0.5,
                      yaw_range=(-1.0, 1.2), max_position_error=0.05, max_rotation_error=0.3)

finite = st.floats(-3, 3, allow_nan=False)
vec3 = st.tuples(finite, finite, finite).map(np.array)
quats = st.tuples(finite, finite, finite, finite).filter(lambda q: np.linalg.norm(q) > 1e-3).map(
    lambda q: np.array(q) / np.linalg.norm(q))


@pytest.mark.timeout(60)
@settings(max_examples=300, deadline=None)
@given(target=vec3, target_q=quats, measured=vec3, measured_q=quats)
def test_clipped_target_is_inside_while_the_arm_is(target, target_q, measured, measured_q):
    measured, measured_q = clip_position(measured, LIMITS), clip_orientation(measured_q, LIMITS)
    pos, quat = clip_target(target, target_q, measured, measured_q, LIMITS)
    assert inside(pos, quat, LIMITS, tol=1e-6)


@pytest.mark.timeout(60)
@settings(max_examples=300, deadline=None)
@given(target=vec3, target_q=quats, measured=vec3, measured_q=quats)
def test_force_bound_always_holds_and_an_outside_arm_is_led_back(
    target, target_q, measured, measured_q
):
    pos, quat = clip_target(target, target_q, measured, measured_q, LIMITS)
    assert np.linalg.norm(pos - measured) <= LIMITS.max_position_error + 1e-9
    assert g.quat_angle(quat, measured_q) <= LIMITS.max_rotation_error + 1e-6
    # distance from the box
    gap = lambda p: np.linalg.norm(p - clip_position(p, LIMITS))  # noqa: E731
    assert gap(pos) <= gap(measured) + 1e-9


@pytest.mark.timeout(60)
@settings(max_examples=200, deadline=None)
@given(offset=vec3, rotvec=vec3)
def test_step_from_measured_pose_is_bounded(offset, rotvec):
    measured = np.array([0.5, 0.0, 0.2])
    measured_q = g.GRIPPER_DOWN_XYZW
    target_q = g.quat_mul(g.rotvec_to_quat(rotvec * 0.3), measured_q)
    pos, quat = clip_target(measured + offset * 0.1, target_q, measured, measured_q, LIMITS)
    assert np.linalg.norm(pos - measured) <= LIMITS.max_position_error + 1e-9
    assert g.quat_angle(quat, measured_q) <= LIMITS.max_rotation_error + 1e-6


@pytest.mark.timeout(10)
def test_targets_inside_pass_unchanged():
    measured, q = np.array([0.5, 0.05, 0.2]), g.GRIPPER_DOWN_XYZW
    target_q = g.quat_mul(g.euler_to_quat([0.05, -0.1, 0.2]), q)
    pos, quat = clip_target(measured + 0.01, target_q, measured, q, LIMITS)
    np.testing.assert_allclose(pos, measured + 0.01)
    assert g.quat_angle(quat, target_q) < 1e-9


@pytest.mark.timeout(10)
def test_cone_is_about_the_tool_axis_and_never_wraps_at_roll_pi():
    # Tilts just either side of roll = pi are both small tilts, not a jump across a wrap point.
    for roll in (math.pi - 0.1, -math.pi + 0.1):
        tilt, yaw = cone_coordinates(g.euler_to_quat([roll, 0.0, 0.0]), LIMITS)
        assert tilt == pytest.approx(0.1, abs=1e-9) and yaw == pytest.approx(0.0, abs=1e-9)
    # tilted 1.2 rad: clipped back to the cone's edge
    far = g.euler_to_quat([math.pi - 1.2, 0.0, 0.0])
    tilt, _ = cone_coordinates(clip_orientation(far, LIMITS), LIMITS)
    assert tilt == pytest.approx(LIMITS.cone_half_angle)
    # yaw 2.0 > 1.2 about the tool
    twisted = g.quat_mul(g.GRIPPER_DOWN_XYZW, g.euler_to_quat([0.0, 0.0, 2.0]))
    assert cone_coordinates(clip_orientation(twisted, LIMITS), LIMITS)[1] == pytest.approx(1.2)


@pytest.mark.timeout(10)
def test_bad_limits_and_non_finite_targets_are_refused():
    with pytest.raises(ValueError, match="xyz_low"):
        SafetyLimits(xyz_low=(0.5, 0, 0), xyz_high=(0.4, 1, 1))
    with pytest.raises(ValueError, match="target pose is not finite"):
        clip_target(
            np.array([np.nan, 0, 0]), g.GRIPPER_DOWN_XYZW, np.zeros(3), g.GRIPPER_DOWN_XYZW, LIMITS
        )
    with pytest.raises(ValueError, match="measured pose is not finite"):
        clip_target(
            np.zeros(3), g.GRIPPER_DOWN_XYZW, np.array([0, np.inf, 0]), g.GRIPPER_DOWN_XYZW, LIMITS
        )
    with pytest.raises(ValueError, match="zero norm"):
        clip_target(np.zeros(3), np.zeros(4), np.zeros(3), g.GRIPPER_DOWN_XYZW, LIMITS)
