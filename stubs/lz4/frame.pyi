# The few lz4.frame names hubgate uses (lz4 ships no type information).

def compress(data: bytes) -> bytes: ...

class LZ4FrameDecompressor:
    eof: bool
    unused_data: bytes
    def decompress(self, data: bytes, max_length: int = ...) -> bytes: ...
