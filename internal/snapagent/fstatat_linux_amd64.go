package snapagent

import (
	"syscall"
	"unsafe"
)

const atSymlinkNofollow = 0x100 // AT_SYMLINK_NOFOLLOW

// fstatat stats name in the directory dirfd without following a symlink,
// in one system call. (package syscall exports no Fstatat on amd64.)
func fstatat(dirfd int, name string, st *syscall.Stat_t) error {
	p, err := syscall.BytePtrFromString(name)
	if err != nil {
		return err
	}
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_NEWFSTATAT, uintptr(dirfd), uintptr(unsafe.Pointer(p)), uintptr(unsafe.Pointer(st)), atSymlinkNofollow, 0, 0)
		switch errno {
		case 0:
			return nil
		case syscall.EINTR:
			continue
		}
		return errno
	}
}
