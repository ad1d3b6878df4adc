// Package guest holds the smoke tests that run inside the VM scenarios of
// internal/vmtest: each checks that its scenario's kernel and cgroup layout
// offer what the scenario promises. Outside the VM (CGMON_VM_SCENARIO unset)
// the tests skip.
package guest
