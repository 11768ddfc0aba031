"""The simulated Panda as the real one is driven: a Cartesian impedance controller at the physics
rate tracks an equilibrium pose, the hand moves its fingers at a limited speed, and the state is
read back in the conventions of DESIGN.md (base frame, xyzw quaternions, wrench at the TCP with the
hand's own load excluded).

Used by the in-process simulated envs and by the ROS 2 simulated driver alike.
"""

from __future__ import annotations

import math

import numpy as np

from serl import geometry as g
from serl.envs.sim import model as panda
from serl.envs.sim.config import ImpedanceGains
from serl.envs.sim.gl import mujoco


class PandaSim:
    """One MuJoCo Panda scene; methods read or drive it, `advance` runs physics for a control
    period."""

    def __init__(self, objects: panda.SceneObjects, physics_dt: float = 0.002,
                 gains: ImpedanceGains = ImpedanceGains()):
        self.model = mujoco.MjModel.from_xml_string(panda.scene_xml(objects, physics_dt))
        self.data = mujoco.MjData(self.model)
        self.gains = gains
        m = self.model
        self.tcp_site = m.site("tcp").id
        self.hand_body = m.body("hand").id
        self.arm_dofs = np.array([m.joint(f"joint{i + 1}").dofadr[0] for i in range(7)])
        self.arm_qpos = np.array([m.joint(f"joint{i + 1}").qposadr[0] for i in range(7)])
        assert np.array_equal(self.arm_dofs, np.arange(7)) and np.array_equal(
            self.arm_qpos, np.arange(7)
        )
        self.finger_qpos = np.array(
            [m.joint(n).qposadr[0] for n in ("left_finger_joint", "right_finger_joint")]
        )
        self.finger_dofs = np.array(
            [m.joint(n).dofadr[0] for n in ("left_finger_joint", "right_finger_joint")]
        )
        self.gripper_actuator = m.actuator("gripper").id
        hand_bodies = {self.hand_body, m.body("left_finger").id, m.body("right_finger").id}
        self._hand_geoms = np.array([m.geom_bodyid[i] in hand_bodies for i in range(m.ngeom)])
        self.n_substeps = 1
        # Controller state and scratch buffers (the inner loop allocates nothing).
        self.target_pos = np.zeros(3)
        self.target_quat_wxyz = np.array([1.0, 0.0, 0.0, 0.0])
        self.gripper_target = 1.0  # normalised opening the hand is moving toward
        self.null_posture = np.array(panda.HOME_QPOS)
        self._jacp = np.zeros((3, m.nv))
        self._jacr = np.zeros((3, m.nv))
        self._jac = np.zeros((6, 7))
        self._quat = np.zeros(4)
        self._quat_inv = np.zeros(4)
        self._quat_err = np.zeros(4)
        self._rot_err = np.zeros(3)
        self._err = np.zeros(6)
        self._null_proj = np.eye(7)
        kt, kr = gains.translational_stiffness, gains.rotational_stiffness
        self._stiffness = np.array([kt, kt, kt, kr, kr, kr])
        zeta = [gains.translational_damping_ratio] * 3 + [gains.rotational_damping_ratio] * 3
        self._damping = 2.0 * np.array(zeta) * np.sqrt(self._stiffness)
        self._kn, self._dn = gains.nullspace_stiffness, 2.0 * math.sqrt(gains.nullspace_stiffness)
        mujoco.mj_forward(self.model, self.data)

    # ---------- reading the state ----------
    @property
    def time(self) -> float:
        return float(self.data.time)

    def tcp_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """TCP position (m) and orientation (xyzw) in the base frame."""
        mujoco.mju_mat2Quat(self._quat, self.data.site_xmat[self.tcp_site])
        return self.data.site_xpos[self.tcp_site].copy(), g.same_hemisphere(
            g.wxyz_to_xyzw(self._quat)
        )

    def tcp_twist(self) -> np.ndarray:
        """Linear then angular velocity of the TCP in the base frame."""
        res = np.zeros(6)
        mujoco.mj_objectVelocity(
            self.model, self.data, mujoco.mjtObj.mjOBJ_SITE, self.tcp_site, res, 0
        )
        return np.concatenate([res[3:], res[:3]])

    def gripper_opening(self) -> float:
        """Normalised opening in [0, 1], 0 closed."""
        width = float(self.data.qpos[self.finger_qpos].sum())
        return min(1.0, max(0.0, width / (2 * panda.FINGER_TRAVEL)))

    def tcp_wrench(self) -> tuple[np.ndarray, np.ndarray]:
        """External force (N) and torque (N m) on the hand, about the TCP, in the base frame.

        Summed over the contacts between the hand (palm and fingers) and anything else, so gravity
        and inertia of the hand itself never appear, as in Franka's compensated estimate; a held
        object's weight does.
        """
        d, m = self.data, self.model
        tcp = d.site_xpos[self.tcp_site]
        force, torque = np.zeros(3), np.zeros(3)
        local = np.zeros(6)
        for i in range(d.ncon):
            c = d.contact[i]
            on1, on2 = self._hand_geoms[c.geom1], self._hand_geoms[c.geom2]
            if on1 == on2:
                continue
            mujoco.mj_contactForce(m, d, i, local)
            # The contact-frame force is what geom1 exerts on geom2; the hand feels it if it is
            # geom2.
            f = c.frame.reshape(3, 3).T @ local[:3] * (1.0 if on2 else -1.0)
            force += f
            torque += np.cross(c.pos - tcp, f)
        return force, torque

    def object_pose(self, body: str) -> tuple[np.ndarray, np.ndarray]:
        b = self.data.body(body)
        return b.xpos.copy(), g.canonical_quat(g.wxyz_to_xyzw(b.xquat))

    # ---------- driving ----------
    def set_target(self, pos: np.ndarray, quat_xyzw: np.ndarray) -> None:
        """The equilibrium pose of the impedance controller (already clipped by the caller's safety
        limits)."""
        self.target_pos[:] = pos
        self.target_quat_wxyz[:] = g.xyzw_to_wxyz(g.canonical_quat(quat_xyzw))

    def set_gripper(self, opening: float) -> None:
        self.gripper_target = min(1.0, max(0.0, float(opening)))

    def advance(self, duration: float) -> None:
        """Run physics and the controller for `duration` seconds (a whole number of physics
        steps)."""
        n = max(1, round(duration / self.model.opt.timestep))
        self._update_null_projector()
        step = self.gains.gripper_speed / 2 * self.model.opt.timestep
        goal = self.gripper_target * panda.FINGER_TRAVEL
        ctrl = self.data.ctrl
        for _ in range(n):
            c = ctrl[self.gripper_actuator]
            ctrl[self.gripper_actuator] = c + min(step, max(-step, goal - c))
            self._control_step()

    def _update_null_projector(self) -> None:
        # Jacobian changes little over one control period; the projector is refreshed once per
        # period.
        mujoco.mj_jacSite(self.model, self.data, self._jacp, self._jacr, self.tcp_site)
        jac = np.vstack([self._jacp[:, :7], self._jacr[:, :7]])
        self._null_proj = np.eye(7) - jac.T @ np.linalg.pinv(jac.T, rcond=1e-3)

    def _control_step(self) -> None:
        m, d, gains = self.model, self.data, self.gains
        mujoco.mj_step1(m, d)
        mujoco.mj_jacSite(m, d, self._jacp, self._jacr, self.tcp_site)
        jac = self._jac
        jac[:3] = self._jacp[:, :7]
        jac[3:] = self._jacr[:, :7]
        err = self._err
        np.subtract(self.target_pos, d.site_xpos[self.tcp_site], out=err[:3])
        mujoco.mju_mat2Quat(self._quat, d.site_xmat[self.tcp_site])
        mujoco.mju_negQuat(self._quat_inv, self._quat)
        mujoco.mju_mulQuat(self._quat_err, self.target_quat_wxyz, self._quat_inv)
        if self._quat_err[0] < 0:
            self._quat_err *= -1
        mujoco.mju_quat2Vel(self._rot_err, self._quat_err, 1.0)
        err[3:] = self._rot_err
        pos_norm = math.sqrt(err[0] ** 2 + err[1] ** 2 + err[2] ** 2)
        if pos_norm > gains.max_position_error:
            err[:3] *= gains.max_position_error / pos_norm
        rot_norm = math.sqrt(err[3] ** 2 + err[4] ** 2 + err[5] ** 2)
        if rot_norm > gains.max_rotation_error:
            err[3:] *= gains.max_rotation_error / rot_norm
        dq = d.qvel[:7]
        wrench = self._stiffness * err - self._damping * (jac @ dq)
        posture = self._kn * (self.null_posture - d.qpos[:7]) - self._dn * dq
        d.ctrl[:7] = jac.T @ wrench + self._null_proj @ posture + d.qfrc_bias[:7]
        mujoco.mj_step2(m, d)

    # ---------- resetting ----------
    def solve_ik(
        self,
        pos: np.ndarray,
        quat_xyzw: np.ndarray,
        seed: np.ndarray | None = None,
        iters: int = 200,
        tol: float = 1e-5,
    ) -> np.ndarray:
        """Joint angles that put the TCP at the given pose (damped least squares, within joint
        limits)."""
        m = self.model
        d = mujoco.MjData(m)
        q = np.array(panda.HOME_QPOS if seed is None else seed, dtype=np.float64)
        lo, hi = np.array(panda.JOINT_LIMITS).T
        target_wxyz = g.xyzw_to_wxyz(g.canonical_quat(quat_xyzw))
        jacp, jacr, cur, inv, qe, rot = (
            np.zeros((3, m.nv)),
            np.zeros((3, m.nv)),
            np.zeros(4),
            np.zeros(4),
            np.zeros(4),
            np.zeros(3),
        )
        for _ in range(iters):
            d.qpos[:7] = q
            mujoco.mj_kinematics(m, d)
            mujoco.mj_comPos(m, d)
            err = np.zeros(6)
            err[:3] = pos - d.site_xpos[self.tcp_site]
            mujoco.mju_mat2Quat(cur, d.site_xmat[self.tcp_site])
            mujoco.mju_negQuat(inv, cur)
            mujoco.mju_mulQuat(qe, target_wxyz, inv)
            if qe[0] < 0:
                qe *= -1
            mujoco.mju_quat2Vel(rot, qe, 1.0)
            err[3:] = rot
            if np.linalg.norm(err) < tol:
                return q
            mujoco.mj_jacSite(m, d, jacp, jacr, self.tcp_site)
            jac = np.vstack([jacp[:, :7], jacr[:, :7]])
            dq = jac.T @ np.linalg.solve(jac @ jac.T + 1e-4 * np.eye(6), err)
            q = np.clip(q + dq, lo, hi)
        raise ValueError(
            f"IK did not converge to pos={pos}, quat={quat_xyzw} (residual "
            f"{np.linalg.norm(err):.2e})"
        )

    def reset_arm(self, pos: np.ndarray, quat_xyzw: np.ndarray, gripper_opening: float) -> None:
        """Teleport the arm to a TCP pose at rest, with the controller's target there too."""
        d = self.data
        q = self.solve_ik(pos, quat_xyzw)
        d.qpos[:7] = q
        d.qvel[:] = 0.0
        d.qacc_warmstart[:] = 0.0
        self.null_posture = q.copy()
        width = gripper_opening * panda.FINGER_TRAVEL
        d.qpos[self.finger_qpos] = width
        d.ctrl[self.gripper_actuator] = width
        self.gripper_target = gripper_opening
        self.set_target(pos, quat_xyzw)
        mujoco.mj_forward(self.model, d)
