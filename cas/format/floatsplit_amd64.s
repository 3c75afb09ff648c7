#include "textflag.h"

// SSE2 (every amd64 has it) byte interleaving for the float codec: see
// floatsplit.go. n counts elements and is a multiple of 16.

// func join2x(elems, g0, g1 *byte, n int)
TEXT ·join2x(SB), NOSPLIT, $0-32
	MOVQ elems+0(FP), DI
	MOVQ g0+8(FP), SI
	MOVQ g1+16(FP), DX
	MOVQ n+24(FP), CX
	SHRQ $4, CX
	JZ   join2done

join2loop:
	MOVOU     (SI), X0
	MOVOU     (DX), X1
	MOVO      X0, X2
	PUNPCKLBW X1, X0
	PUNPCKHBW X1, X2
	MOVOU     X0, (DI)
	MOVOU     X2, 16(DI)
	ADDQ      $16, SI
	ADDQ      $16, DX
	ADDQ      $32, DI
	DECQ      CX
	JNZ       join2loop

join2done:
	RET

// func split2x(g0, g1, elems *byte, n int)
TEXT ·split2x(SB), NOSPLIT, $0-32
	MOVQ    g0+0(FP), DI
	MOVQ    g1+8(FP), DX
	MOVQ    elems+16(FP), SI
	MOVQ    n+24(FP), CX
	PCMPEQW X7, X7
	PSRLW   $8, X7
	SHRQ    $4, CX
	JZ      split2done

split2loop:
	MOVOU    (SI), X0
	MOVOU    16(SI), X1
	MOVO     X0, X2
	MOVO     X1, X3
	PAND     X7, X0
	PAND     X7, X1
	PACKUSWB X1, X0
	PSRLW    $8, X2
	PSRLW    $8, X3
	PACKUSWB X3, X2
	MOVOU    X0, (DI)
	MOVOU    X2, (DX)
	ADDQ     $32, SI
	ADDQ     $16, DI
	ADDQ     $16, DX
	DECQ     CX
	JNZ      split2loop

split2done:
	RET

// func join4x(elems, g0, g1, g2, g3 *byte, n int)
TEXT ·join4x(SB), NOSPLIT, $0-48
	MOVQ elems+0(FP), DI
	MOVQ g0+8(FP), R8
	MOVQ g1+16(FP), R9
	MOVQ g2+24(FP), R10
	MOVQ g3+32(FP), R11
	MOVQ n+40(FP), CX
	SHRQ $4, CX
	JZ   join4done

join4loop:
	MOVOU     (R8), X0
	MOVOU     (R9), X1
	MOVOU     (R10), X2
	MOVOU     (R11), X3
	MOVO      X0, X4
	PUNPCKLBW X1, X0
	PUNPCKHBW X1, X4
	MOVO      X2, X5
	PUNPCKLBW X3, X2
	PUNPCKHBW X3, X5
	MOVO      X0, X6
	PUNPCKLWL X2, X0
	PUNPCKHWL X2, X6
	MOVO      X4, X7
	PUNPCKLWL X5, X4
	PUNPCKHWL X5, X7
	MOVOU     X0, (DI)
	MOVOU     X6, 16(DI)
	MOVOU     X4, 32(DI)
	MOVOU     X7, 48(DI)
	ADDQ      $16, R8
	ADDQ      $16, R9
	ADDQ      $16, R10
	ADDQ      $16, R11
	ADDQ      $64, DI
	DECQ      CX
	JNZ       join4loop

join4done:
	RET

// func split4x(g0, g1, g2, g3, elems *byte, n int)
TEXT ·split4x(SB), NOSPLIT, $0-48
	MOVQ    g0+0(FP), R8
	MOVQ    g1+8(FP), R9
	MOVQ    g2+16(FP), R10
	MOVQ    g3+24(FP), R11
	MOVQ    elems+32(FP), SI
	MOVQ    n+40(FP), CX
	PCMPEQW X15, X15
	PSRLW   $8, X15
	SHRQ    $4, CX
	JZ      split4done

split4loop:
	// Elements 0-7: even bytes (0, 2) to X4, odd bytes (1, 3) to X5.
	MOVOU    (SI), X0
	MOVOU    16(SI), X1
	MOVO     X0, X4
	MOVO     X1, X6
	PAND     X15, X4
	PAND     X15, X6
	PACKUSWB X6, X4
	PSRLW    $8, X0
	PSRLW    $8, X1
	PACKUSWB X1, X0
	MOVO     X0, X5

	// Elements 8-15: even bytes to X8, odd bytes to X9.
	MOVOU    32(SI), X2
	MOVOU    48(SI), X3
	MOVO     X2, X8
	MOVO     X3, X6
	PAND     X15, X8
	PAND     X15, X6
	PACKUSWB X6, X8
	PSRLW    $8, X2
	PSRLW    $8, X3
	PACKUSWB X3, X2
	MOVO     X2, X9

	// Bytes 0 and 2 from the even halves, 1 and 3 from the odd ones.
	MOVO     X4, X0
	MOVO     X8, X1
	PAND     X15, X0
	PAND     X15, X1
	PACKUSWB X1, X0
	PSRLW    $8, X4
	PSRLW    $8, X8
	PACKUSWB X8, X4
	MOVO     X5, X2
	MOVO     X9, X3
	PAND     X15, X2
	PAND     X15, X3
	PACKUSWB X3, X2
	PSRLW    $8, X5
	PSRLW    $8, X9
	PACKUSWB X9, X5
	MOVOU    X0, (R8)
	MOVOU    X2, (R9)
	MOVOU    X4, (R10)
	MOVOU    X5, (R11)
	ADDQ     $64, SI
	ADDQ     $16, R8
	ADDQ     $16, R9
	ADDQ     $16, R10
	ADDQ     $16, R11
	DECQ     CX
	JNZ      split4loop

split4done:
	RET
