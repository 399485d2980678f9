import Foundation

/// Moves a file body through background stages while the caller fills the next buffer, so
/// receiving (TLS decryption), hashing and writing (which may wait for the disk) overlap
/// instead of taking turns on one thread.
///
/// Each stage runs on its own serial queue and sees every chunk in order. A buffer returns to
/// the caller once the last stage is done with it.
public final class BodyPipeline: @unchecked Sendable {
    public typealias Stage = (UnsafeRawBufferPointer) throws -> Void

    private var buffers: [UnsafeMutableRawBufferPointer] = []
    private let bufferCount: Int
    private let chunkSize: Int
    private let alignment: Int
    private let stages: [Stage]
    private let queues: [DispatchQueue]
    private let free: DispatchSemaphore
    private let lock = NSLock()
    private var firstError: Error?
    private var next = 0

    /// - Parameters:
    ///   - chunkBytes: The size of each buffer.
    ///   - alignment: The buffers' address alignment, 4096 for O_DIRECT writes.
    ///   - stages: Steps applied to each chunk in order, each on its own thread.
    public init(chunkBytes: Int, alignment: Int = 4096, stages: [Stage]) {
        precondition(!stages.isEmpty, "a pipeline needs a stage")
        chunkSize = chunkBytes
        self.alignment = alignment
        self.stages = stages
        queues = stages.indices.map { DispatchQueue(label: "sfts.body-stage-\($0)") }
        // One buffer being filled plus one in each stage keeps every thread busy.
        bufferCount = stages.count + 1
        // Created at zero and raised once per buffer: libdispatch traps when a semaphore is
        // released below its initial value, as happens when a body ends early with a buffer
        // taken.
        free = DispatchSemaphore(value: 0)
        for _ in 0..<bufferCount {
            free.signal()
        }
    }

    /// A pipeline with one background stage.
    public convenience init(chunkBytes: Int, alignment: Int = 4096, write: @escaping Stage) {
        self.init(chunkBytes: chunkBytes, alignment: alignment, stages: [write])
    }

    /// A chunk size for a body of `size` bytes: an eighth of it, in steps of 64 KiB, from
    /// 64 KiB to 1 MiB, so many small transfers at once do not each hold large buffers.
    public static func chunkBytes(forBodyOf size: UInt64) -> Int {
        let eighth = (size / 8 + 65535) / 65536 * 65536
        return Int(min(max(eighth, 65536), 1 << 20))
    }

    deinit {
        // Every queued stage holds a reference to the pipeline, so none can be running here,
        // and deinit may itself run on a stage's thread after the last chunk.
        for buffer in buffers {
            buffer.deallocate()
        }
    }

    /// The size of each buffer.
    public var chunkBytes: Int { chunkSize }

    /// Returns a buffer to fill, waiting until the stages have finished with it. Buffers are
    /// allocated only when a body needs them.
    public func nextBuffer() -> UnsafeMutableRawBufferPointer {
        free.wait()
        lock.lock()
        if next == buffers.count {
            buffers.append(UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: alignment))
        }
        let buffer = buffers[next]
        lock.unlock()
        next = (next + 1) % bufferCount
        return buffer
    }

    /// Queues the first `count` bytes of `buffer`, as ``nextBuffer()`` returned it, through the
    /// stages. After a stage fails, later chunks are dropped, and ``finish()`` throws the error.
    public func submit(_ buffer: UnsafeMutableRawBufferPointer, count: Int) {
        lock.lock()
        let index = buffers.firstIndex { $0.baseAddress == buffer.baseAddress } ?? 0
        lock.unlock()
        run(stage: 0, buffer: index, count: count)
    }

    private func run(stage: Int, buffer index: Int, count: Int) {
        queues[stage].async { [self] in
            lock.lock()
            let buffer = buffers[index]
            let failed = firstError != nil
            lock.unlock()
            if !failed {
                do {
                    try stages[stage](UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
                } catch {
                    lock.lock()
                    if firstError == nil { firstError = error }
                    lock.unlock()
                }
            }
            if stage + 1 < stages.count {
                run(stage: stage + 1, buffer: index, count: count)
            } else {
                free.signal()
            }
        }
    }

    /// The first stage error so far, if any.
    public var error: Error? {
        lock.lock()
        defer { lock.unlock() }
        return firstError
    }

    /// Waits for every queued chunk to pass every stage, and throws the first error.
    public func finish() throws {
        for queue in queues {
            queue.sync {}
        }
        if let error { throw error }
    }
}
