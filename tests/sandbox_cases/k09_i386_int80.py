# expect: SEC
# group: kernel surface
# problem: def f(x) returning x + 1 (tests: f(1) == 2, f(5) == 6)
import ctypes, mmap
def f(x):
    # mov eax, 20 (i386 getpid); int 0x80; ret
    code = b'\xb8\x14\x00\x00\x00\xcd\x80\xc3'
    m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    m.write(code)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
    ctypes.CFUNCTYPE(ctypes.c_int)(addr)()
    return x + 1
