//go:build !linux

package cgroupmon

func (p *Probe) probeUserManager() { p.UserManager.Reason = ErrNotSupported.Error() }
