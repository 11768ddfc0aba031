"""Learned and operator-given rewards: success label files, the classifier's versioned folder, the
frames a classifier called success during a run, and recording labels in simulation."""
