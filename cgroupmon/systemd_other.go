//go:build !linux

package cgroupmon

func probeUserManager(string) UserManager { return UserManager{Reason: ErrNotSupported.Error()} }
