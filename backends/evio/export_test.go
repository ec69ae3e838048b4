//go:build linux

package evio

import "errors"

// CheckInternals reports whether the layout of evio's connection was
// learned and matched (after the first connection).
func CheckInternals() error {
	internalsOnce.Do(func() {}) // for the happens-before edge
	if errInternals != nil {
		return errInternals
	}
	if layout.connType == nil {
		return errors.New("evio's connection layout was never learned")
	}
	return nil
}
