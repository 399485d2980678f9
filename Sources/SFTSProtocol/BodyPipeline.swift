import Foundation

/// Writes a file body on a background thread while the caller receives the next part, with
/// two buffers taking turns: one filled from the connection and hashed, the other written out.
///
/// Receiving (TLS decryption and SHA-256) and writing (a disk write that may wait for the
/// device) then overlap instead of taking turns on one thread.
public final class BodyPipeline: @unchecked Sendable {
    private var buffers: [UnsafeMutableRawBufferPointer] = []
    private let chunkSize: Int
    private let alignment: Int
    private let write: (UnsafeRawBufferPointer) throws -> Void
    private let queue = DispatchQueue(label: "sfts.body-writer")
    private let free: DispatchSemaphore
    private let lock = NSLock()
    private var firstError: Error?
    private var next = 0

    /// - Parameters:
    ///   - chunkBytes: The size of each of the two buffers.
    ///   - alignment: The buffers' address alignment, 4096 for O_DIRECT writes.
    ///   - write: Writes one chunk; called on the background thread, one chunk at a time.
    public init(
        chunkBytes: Int, alignment: Int = 4096, write: @escaping (UnsafeRawBufferPointer) throws -> Void
    ) {
        chunkSize = chunkBytes
        self.alignment = alignment
        // Created at zero and raised twice: libdispatch traps when a semaphore is released
        // below its initial value, as happens when a body ends early with a buffer taken.
        free = DispatchSemaphore(value: 0)
        free.signal()
        free.signal()
        self.write = write
    }

    /// A chunk size for a body of `size` bytes: a quarter of it, in steps of 64 KiB, from
    /// 64 KiB to 1 MiB, so many small transfers at once do not each hold two large buffers.
    public static func chunkBytes(forBodyOf size: UInt64) -> Int {
        let quarter = (size / 4 + 65535) / 65536 * 65536
        return Int(min(max(quarter, 65536), 1 << 20))
    }

    deinit {
        // Every queued write holds a reference to the pipeline, so none can be running here,
        // and deinit may itself run on the writer's thread after the last write.
        for buffer in buffers {
            buffer.deallocate()
        }
    }

    /// The size of each buffer.
    public var chunkBytes: Int { chunkSize }

    /// Returns a buffer to fill, waiting until the writer has finished with it. The second
    /// buffer is allocated only when a body needs it.
    public func nextBuffer() -> UnsafeMutableRawBufferPointer {
        free.wait()
        if next == buffers.count {
            lock.lock()
            buffers.append(UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: alignment))
            lock.unlock()
        }
        let buffer = buffers[next]
        next = (next + 1) % 2
        return buffer
    }

    /// Queues the first `count` bytes of `buffer`, as ``nextBuffer()`` returned it, for writing.
    /// After a failed write the rest is dropped, and ``finish()`` throws the error.
    public func submit(_ buffer: UnsafeMutableRawBufferPointer, count: Int) {
        lock.lock()
        let index = buffers.firstIndex { $0.baseAddress == buffer.baseAddress } ?? 0
        lock.unlock()
        queue.async { [self] in
            lock.lock()
            let buffer = buffers[index]
            lock.unlock()
            defer { free.signal() }
            lock.lock()
            let failed = firstError != nil
            lock.unlock()
            guard !failed else { return }
            do {
                try write(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
            } catch {
                lock.lock()
                firstError = error
                lock.unlock()
            }
        }
    }

    /// The first write error so far, if any.
    public var error: Error? {
        lock.lock()
        defer { lock.unlock() }
        return firstError
    }

    /// Waits for every queued write and throws the first error.
    public func finish() throws {
        queue.sync {}
        if let error { throw error }
    }
}
