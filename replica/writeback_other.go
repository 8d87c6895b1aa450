//go:build !linux

package replica

import "github.com/logship/logship/devio"

// eager is the image as it is where sync_file_range does not exist.
type eager struct{ *devio.Device }
