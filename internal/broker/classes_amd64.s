//go:build !purego

#include "textflag.h"

// The eight bytes are told apart by their nibbles, as in a table-driven
// byte classifier: a byte is in a class when lowNibble[low] AND
// highNibble[high] has one of the class's bits. Each bit is one set of
// high nibbles times one set of low nibbles, so nothing else matches:
//
//	bit 0x01  high 5, low C          \
//	bit 0x02  high 2, low 5 and 6    % &
//	bit 0x04  high 3, low D          =
//	bit 0x08  high 2, low 0          space
//	bit 0x10  high 0, low 9, A, D    \t \n \r
//
// Escapes are bits 0x07 and whitespace bits 0x18. VPSHUFB looks up each
// 128-bit lane on its own, so each table is written twice.
DATA lowNibble<>+0x00(SB)/8, $0x0002020000000008
DATA lowNibble<>+0x08(SB)/8, $0x0000140100101000
DATA lowNibble<>+0x10(SB)/8, $0x0002020000000008
DATA lowNibble<>+0x18(SB)/8, $0x0000140100101000
GLOBL lowNibble<>(SB), RODATA|NOPTR, $32

DATA highNibble<>+0x00(SB)/8, $0x00000100040a0010
DATA highNibble<>+0x08(SB)/8, $0x0000000000000000
DATA highNibble<>+0x10(SB)/8, $0x00000100040a0010
DATA highNibble<>+0x18(SB)/8, $0x0000000000000000
GLOBL highNibble<>(SB), RODATA|NOPTR, $32

// func classesAVX2(b []byte) (esc, white bool)
//
// Y1 and Y2 hold the tables, Y0 the nibble mask; Y12 collects the bits of
// every byte seen. Every instruction is VEX-encoded: a legacy SSE one (a
// MOVQ into an X register) after a 256-bit one costs a transition, which
// was about 1 µs a call in an earlier version with eight of them.
TEXT ·classesAVX2(SB), NOSPLIT, $0-26
	MOVQ b_base+0(FP), SI
	MOVQ b_len+8(FP), CX

	MOVL         $0x0f, AX
	VMOVD        AX, X0
	VPBROADCASTB X0, Y0
	VMOVDQU      lowNibble<>(SB), Y1
	VMOVDQU      highNibble<>(SB), Y2
	VPXOR        Y12, Y12, Y12

loop:
	CMPQ    CX, $32
	JB      done
	VMOVDQU (SI), Y8
	VPSRLW  $4, Y8, Y9
	VPAND   Y0, Y9, Y9
	VPAND   Y0, Y8, Y8
	VPSHUFB Y8, Y1, Y8
	VPSHUFB Y9, Y2, Y9
	VPAND   Y8, Y9, Y9
	VPOR    Y9, Y12, Y12
	ADDQ    $32, SI
	SUBQ    $32, CX
	JMP     loop

done:
	MOVL         $0x07, AX
	VMOVD        AX, X3
	VPBROADCASTB X3, Y3
	VPTEST       Y3, Y12
	SETNE        esc+24(FP)
	MOVL         $0x18, AX
	VMOVD        AX, X3
	VPBROADCASTB X3, Y3
	VPTEST       Y3, Y12
	SETNE        white+25(FP)
	VZEROUPPER
	RET
