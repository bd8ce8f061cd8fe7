# The few lz4.frame names hubgate uses (lz4 ships no type information).

BLOCKSIZE_MAX64KB: int

def compress(data: bytes, block_size: int = ..., block_linked: bool = ..., store_size: bool = ...) -> bytes: ...

class LZ4FrameDecompressor:
    eof: bool
    unused_data: bytes
    def decompress(self, data: bytes, max_length: int = ...) -> bytes: ...
