"""The MuJoCo scene: a Franka Panda built for this project from Franka's published kinematics
(modified DH table), joint, velocity and torque limits and link masses, with simple capsule geoms,
the Franka Hand, a table and the task objects. Generated as MJCF text so that nothing is copied from
other projects' asset files.

The robot base sits at the world origin with the table top at z = 0, so world and base frames
coincide.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Modified DH (Craig): a_{i-1}, d_i, alpha_{i-1} for joints 1..7, then the flange (d = 0.107).
DH = (
    (0.0, 0.333, 0.0),
    (0.0, 0.0, -math.pi / 2),
    (0.0, 0.316, math.pi / 2),
    (0.0825, 0.0, math.pi / 2),
    (-0.0825, 0.384, -math.pi / 2),
    (0.0, 0.0, math.pi / 2),
    (0.088, 0.0, math.pi / 2),
)
FLANGE_D = 0.107
TCP_OFFSET = 0.1034  # m from the flange along its z axis
JOINT_LIMITS = (
    (-2.8973, 2.8973), (-1.7628, 1.7628), (-2.8973, 2.8973), (-3.0718, -0.0698),
    (-2.8973, 2.8973), (-0.0175, 3.7525), (-2.8973, 2.8973),
)
VELOCITY_LIMITS = (2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61)  # rad/s
TORQUE_LIMITS = (87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0)  # N m
LINK_MASSES = (4.970684, 0.646926, 3.228604, 3.587895, 1.225946, 1.666555, 0.735522)  # kg
LINK_COMS = (
    (0.003875, 0.002081, -0.04762),
    (-0.003141, -0.02872, 0.003495),
    (0.027518, 0.039252, -0.066502),
    (-0.05317, 0.104419, 0.027454),
    (-0.011953, 0.041065, -0.038437),
    (0.060149, -0.014117, -0.010517),
    (0.010517, -0.004252, 0.061597),
)
HAND_MASS = 0.73
FINGER_TRAVEL = 0.04  # m per finger; the hand opens to 0.08 m
FINGER_MASS = 0.015
HOME_QPOS = (0.0, -0.3, 0.0, -2.2, 0.0, 1.9, math.pi / 4)  # a comfortable seed for IK, gripper down


@dataclass(frozen=True)
class SceneObjects:
    cube_half_size: float = 0.02  # m
    cube_mass: float = 0.05  # kg
    with_cube: bool = True
    with_peg: bool = False
    peg_radius: float = 0.012  # m
    peg_half_length: float = 0.04  # m
    hole_clearance: float = 0.004  # m, between peg and hole wall
    hole_depth: float = 0.04  # m
    render_size: int = 128


def _fmt(v) -> str:
    return " ".join(f"{x:.6g}" for x in v)


def _dh_child_frame(a: float, d: float, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Position and wxyz quaternion of link i's frame in link i-1's frame (joint angle 0)."""
    pos = np.array([a, -math.sin(alpha) * d, math.cos(alpha) * d])
    quat = np.array([math.cos(alpha / 2), math.sin(alpha / 2), 0.0, 0.0])
    return pos, quat


def _capsule_inertia(mass: float, start: np.ndarray, end: np.ndarray, radius: float) -> np.ndarray:
    """Full inertia (xx yy zz xy xz yz) of a solid rod from start to end, about its centre of
    mass."""
    axis = end - start
    length = float(np.linalg.norm(axis))
    u = axis / length if length > 1e-9 else np.array([0.0, 0.0, 1.0])
    i_axis = 0.5 * mass * radius**2
    i_perp = mass * (3 * radius**2 + max(length, 2 * radius) ** 2) / 12
    inertia = i_perp * np.eye(3) + (i_axis - i_perp) * np.outer(u, u)
    return inertia[[0, 1, 2, 0, 0, 1], [0, 1, 2, 1, 2, 2]]


def _arm_links() -> str:
    """Nested bodies link1..link7, each capsule spanning to the next joint, then the hand."""
    frames = [_dh_child_frame(*row) for row in DH]
    radii = (0.065, 0.06, 0.06, 0.055, 0.055, 0.05, 0.045)
    xml_open, xml_close = [], []
    for i in range(7):
        pos, quat = frames[i]
        nxt = frames[i + 1][0] if i < 6 else np.array([0.0, 0.0, FLANGE_D])
        # A short stub along the joint axis where the next joint has no offset, so every link has
        # volume.
        start = np.zeros(3) if np.linalg.norm(nxt) > 1e-6 else np.array([0.0, 0.0, -0.06])
        end = nxt if np.linalg.norm(nxt) > 1e-6 else np.array([0.0, 0.0, 0.06])
        lo, hi = JOINT_LIMITS[i]
        inertia = _capsule_inertia(LINK_MASSES[i], start, end, radii[i])
        rgba = "0.92 0.92 0.92 1" if i % 2 == 0 else "0.25 0.25 0.28 1"
        xml_open.append(
            f'<body name="link{i + 1}" pos="{_fmt(pos)}" quat="{_fmt(quat)}">'
            f'<inertial pos="{_fmt(LINK_COMS[i])}" mass="{LINK_MASSES[i]}" '
            f'fullinertia="{_fmt(inertia)}"/>'
            f'<joint name="joint{i + 1}" range="{lo} {hi}" class="arm"/>'
            f'<geom type="capsule" fromto="{_fmt(start)} {_fmt(end)}" size="{radii[i]}" '
            f'rgba="{rgba}" class="arm"/>'
        )
        xml_close.append("</body>")
    return "".join(xml_open) + _hand() + "".join(reversed(xml_close))


def _hand() -> str:
    """The Franka Hand on the flange, turned -45 degrees about z as mounted; TCP site between the
    fingertips."""
    q = (math.cos(-math.pi / 8), 0.0, 0.0, math.sin(-math.pi / 8))
    finger = (
        '<body name="{n}" pos="0 {y} 0.0584">'
        '<inertial pos="0 0 0.025" mass="{m}" diaginertia="2e-6 2e-6 1e-6"/>'
        '<joint name="{n}_joint" type="slide" axis="0 {s} 0" range="0 {t}" class="finger"/>'
        '<geom type="box" pos="0 {py} 0.025" size="0.01 0.006 0.022" rgba="0.25 0.25 0.28 1" '
        'class="arm"/>'
        '<geom name="{n}_pad" type="box" pos="0 {pp} 0.04" size="0.0085 0.002 0.0095" class="pad"/>'
        "</body>"
    )
    left = finger.format(
        n="left_finger", y=0.0, s=1, t=FINGER_TRAVEL, m=FINGER_MASS, py=0.008, pp=0.0
    )
    right = finger.format(
        n="right_finger", y=0.0, s=-1, t=FINGER_TRAVEL, m=FINGER_MASS, py=-0.008, pp=0.0
    )
    return (
        f'<body name="hand" pos="0 0 {FLANGE_D}" quat="{_fmt(q)}">'
        f'<inertial pos="-0.01 0 0.03" mass="{HAND_MASS}" diaginertia="0.0025 0.0015 0.0018"/>'
        '<geom type="box" pos="0 0 0.03" size="0.025 0.095 0.028" rgba="0.92 0.92 0.92 1" '
        'class="arm"/>'
        '<geom type="cylinder" pos="0 0 0.005" size="0.04 0.005" rgba="0.25 0.25 0.28 1" '
        'class="arm"/>'
        f'<site name="tcp" pos="0 0 {TCP_OFFSET}" size="0.004" rgba="1 0 1 0"/>'
        '<camera name="wrist" pos="0.06 0 0.03" xyaxes="0 -1 0 -1 0 0" fovy="75"/>'
        + left
        + right
        + "</body>"
    )


def _task_objects(obj: SceneObjects) -> str:
    parts = []
    if obj.with_cube:
        h = obj.cube_half_size
        parts.append(
            f'<body name="cube" pos="0.5 0 {h}"><freejoint name="cube"/>'
            f'<geom name="cube" type="box" size="{h} {h} {h}" mass="{obj.cube_mass}" rgba="0.85 '
            '0.1 0.1 1" '
            'class="object"/></body>'
        )
    if obj.with_peg:
        r, hl = obj.peg_radius, obj.peg_half_length
        parts.append(
            f'<body name="peg" pos="0.5 0 0.3"><freejoint name="peg"/>'
            f'<geom name="peg" type="box" size="{r} {r} {hl}" mass="0.03" rgba="0.1 0.3 0.9 1" '
            'class="object"/>'
            f'<site name="peg_bottom" pos="0 0 {-hl}" size="0.003"/></body>'
        )
        # A square hole of half-width r + clearance, built from four blocks on a mocap base so its
        # pose can be randomised at reset without a free joint.
        w, depth, t = r + obj.hole_clearance, obj.hole_depth, 0.02
        walls = []
        for sx, sy, hx, hy in (
            (1, 0, t / 2, w + t),
            (-1, 0, t / 2, w + t),
            (0, 1, w, t / 2),
            (0, -1, w, t / 2),
        ):
            px, py = sx * (w + t / 2), sy * (w + t / 2)
            walls.append(
                f'<geom type="box" pos="{px} {py} {depth / 2}" size="{hx} {hy} {depth / 2}" '
                'rgba="0.2 0.7 0.3 1" class="object"/>'
            )
        parts.append(
            f'<body name="hole" mocap="true" pos="0.5 0.1 0">{"".join(walls)}'
            '<site name="hole_bottom" pos="0 0 0" size="0.003"/></body>'
        )
    return "".join(parts)


def scene_xml(obj: SceneObjects, physics_dt: float = 0.002) -> str:
    return f"""
<mujoco model="serl_panda">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{physics_dt}" integrator="implicitfast" cone="elliptic" impratio="10"/>
  <visual>
    <quality shadowsize="0" offsamples="0"/>
    <global offwidth="{obj.render_size}" offheight="{obj.render_size}"/>
    <headlight ambient="0.3 0.3 0.3" diffuse="0.35 0.35 0.35" specular="0 0 0"/>
  </visual>
  <default>
    <default class="arm">
      <joint armature="0.05" damping="0.5"/>
      <geom contype="2" conaffinity="1" group="1" density="0"/>
    </default>
    <default class="finger">
      <joint armature="0.01" damping="10"/>
    </default>
    <default class="pad">
      <geom contype="2" conaffinity="1" friction="1.5 0.05 0.001" condim="4" rgba="0.1 0.1 0.1 1"
            density="0" solref="0.004 1" solimp="0.95 0.99 0.001"/>
    </default>
    <default class="object">
      <geom contype="1" conaffinity="1" friction="1.0 0.05 0.001" condim="4" solref="0.004 1"/>
    </default>
  </default>
  <worldbody>
    <light pos="0.5 -0.5 1.5" dir="0 0.3 -1" diffuse="0.45 0.45 0.45" castshadow="false"/>
    <geom name="table" type="box" pos="0.45 0 -0.02" size="0.55 0.6 0.02" rgba="0.55 0.5 0.44 1"
          contype="1" conaffinity="1"/>
    <geom name="base" type="cylinder" pos="0 0 0.06" size="0.09 0.06" rgba="0.92 0.92 0.92 1"
          contype="2" conaffinity="1"/>
    <camera name="front" pos="0.95 0 0.5" xyaxes="0 1 0 -0.669 0 0.743" fovy="55"/>
    {_arm_links()}
    {_task_objects(obj)}
  </worldbody>
  <equality>
    <joint joint1="left_finger_joint" joint2="right_finger_joint" solref="0.005 1"/>
  </equality>
  <actuator>
    {
        "".join(
            f'<motor name="torque{i + 1}" joint="joint{i + 1}" ctrlrange="{-t} {t}"/>'
            for i, t in enumerate(TORQUE_LIMITS)
        )
    }
    <position name="gripper" joint="left_finger_joint" kp="2000" dampratio="1" ctrlrange="0 {
        FINGER_TRAVEL
    }"
              forcerange="-70 70"/>
  </actuator>
</mujoco>
"""
