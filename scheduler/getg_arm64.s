#include "textflag.h"

// func getg() uintptr: the current goroutine's g pointer, unique among
// live goroutines; used only to recognise a task's own goroutine.
TEXT ·getg(SB),NOSPLIT,$0-8
	MOVD g, R0
	MOVD R0, ret+0(FP)
	RET
