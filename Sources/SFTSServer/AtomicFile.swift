import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A failure reading or writing server state.
public struct StateError: Error, CustomStringConvertible {
    public let path: String
    public let reason: String

    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }

    public var description: String { "\(path): \(reason)" }

    static func system(_ call: String, _ path: String, _ code: Int32 = errno) -> StateError {
        StateError(path: path, reason: "\(call) failed: \(String(cString: strerror(code)))")
    }
}

/// Crash-safe state files: writes go to a temporary file that is fsynced and renamed over the
/// target, so a reader sees the old or the new contents, never a mix.
public enum AtomicFile {
    /// Replaces `url` with `data` atomically, with mode `permissions`.
    public static func write(_ data: Data, to url: URL, permissions: mode_t = 0o600) throws {
        let folder = url.deletingLastPathComponent().path
        let temporary = folder + "/." + url.lastPathComponent + ".tmp-" + UUID().uuidString
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, permissions)
        guard descriptor >= 0 else { throw StateError.system("open", temporary) }
        var committed = false
        defer {
            if !committed { unlink(temporary) }
        }

        let writeError: StateError? = data.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = Glibc.write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    return StateError.system("write", temporary)
                }
                offset += written
            }
            return nil
        }
        if let writeError {
            close(descriptor)
            throw writeError
        }
        fchmod(descriptor, permissions)
        guard fsync(descriptor) == 0 else {
            let error = StateError.system("fsync", temporary)
            close(descriptor)
            throw error
        }
        close(descriptor)
        guard rename(temporary, url.path) == 0 else { throw StateError.system("rename", url.path) }
        committed = true
        syncFolder(folder)
    }

    /// Flushes a folder's entries, so a rename inside it survives a crash.
    static func syncFolder(_ path: String) {
        let descriptor = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { return }
        fsync(descriptor)
        close(descriptor)
    }

    /// Runs `body` while holding an exclusive lock on `<url>.lock`, which serialises writers in
    /// this process and in other processes, such as `sfts user` next to a running server.
    public static func withLock<T>(on url: URL, _ body: () throws -> T) throws -> T {
        let lockPath = url.path + ".lock"
        let descriptor = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw StateError.system("open", lockPath) }
        defer { close(descriptor) }
        while flock(descriptor, LOCK_EX) != 0 {
            if errno != EINTR { throw StateError.system("flock", lockPath) }
        }
        defer { flock(descriptor, LOCK_UN) }
        return try body()
    }
}

/// A JSON document in one state file, read whole and replaced atomically under a lock.
public struct JSONFile<Document: Codable>: Sendable {
    public let url: URL
    private let empty: @Sendable () -> Document

    public init(url: URL, empty: @escaping @Sendable () -> Document) {
        self.url = url
        self.empty = empty
    }

    /// Reads the document; a missing file reads as the empty document.
    public func read() throws -> Document {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch CocoaError.fileReadNoSuchFile {
            return empty()
        } catch {
            throw StateError(path: url.path, reason: "cannot read: \(error.localizedDescription)")
        }
        do {
            return try JSONDecoder().decode(Document.self, from: data)
        } catch {
            throw StateError(
                path: url.path, reason: "invalid JSON (\(error)); fix or restore the file")
        }
    }

    /// Reads, changes and writes the document while holding its lock.
    @discardableResult
    public func update<T>(_ change: (inout Document) throws -> T) throws -> T {
        try AtomicFile.withLock(on: url) {
            var document = try read()
            let result = try change(&document)
            try write(document)
            return result
        }
    }

    /// Replaces the document.
    public func write(_ document: Document) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        var data = try encoder.encode(document)
        data.append(0x0A)
        try AtomicFile.write(data, to: url)
    }
}
