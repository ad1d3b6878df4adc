package cgroupmon

// UserManager is what the probe learnt of the user's systemd instance.
type UserManager struct {
	// Address is the user bus address, empty when none was found.
	Address string `json:"address,omitempty"`
	// Reachable is true when systemd answered on the user bus.
	Reachable bool `json:"reachable"`
	// Version is the user manager's systemd version.
	Version string `json:"version,omitempty"`
	// Delegates are the controllers the user manager may delegate (its
	// user@UID.service cgroup's controllers).
	Delegates []string `json:"delegates,omitempty"`
	// Reason says why it is not reachable.
	Reason string `json:"reason,omitempty"`
}
