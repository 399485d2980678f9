import Foundation
import SFTSProtocol

#if canImport(Glibc)
    import Glibc
#endif

/// Local file handling for transfers.
enum LocalFile {
    /// Opens a regular file and returns its descriptor, which the caller closes, and its size.
    static func openForReading(_ path: String) throws -> (descriptor: Int32, size: UInt64) {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            let code = errno
            throw ClientError(
                code == ENOENT ? .notFound : .local,
                "cannot open \(path): \(String(cString: strerror(code)))")
        }
        var status = stat()
        guard fstat(descriptor, &status) == 0, status.st_mode & S_IFMT == S_IFREG else {
            close(descriptor)
            throw ClientError(.local, "\(path) is not a regular file")
        }
        return (descriptor, UInt64(status.st_size))
    }

    /// Returns the last component of a local path, normalised to NFC as remote names are.
    static func lastComponent(of path: String) -> String {
        URL(fileURLWithPath: path).lastPathComponent.precomposedStringWithCanonicalMapping
    }

    /// Returns where a download goes: `localPath`, or inside it when it is a folder, or the
    /// remote name in the current folder.
    static func downloadTarget(_ localPath: String?, remoteName: String) -> String {
        guard let localPath, !localPath.isEmpty else { return remoteName }
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: localPath, isDirectory: &isFolder), isFolder.boolValue {
            return localPath.hasSuffix("/") ? localPath + remoteName : localPath + "/" + remoteName
        }
        // A path ending in "/" names a folder, which must exist; saving inside it shows that.
        if localPath.hasSuffix("/") {
            return localPath + remoteName
        }
        return localPath
    }

    /// Returns the folder part of a local path: "." for a bare name, "/" for a file in the
    /// root. Foundation's deletingLastPathComponent crashes on one-character names in
    /// swift-corelibs-foundation 6.3, so this splits the string itself.
    static func parentFolder(of path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1, trimmed.hasSuffix("/") {
            trimmed.removeLast()
        }
        guard let slash = trimmed.lastIndex(of: "/") else { return "." }
        let folder = trimmed[..<slash]
        return folder.isEmpty ? "/" : String(folder)
    }

    static func withBuffer<T>(_ size: Int, _ body: (UnsafeMutableRawBufferPointer) throws -> T)
        rethrows -> T
    {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 16)
        defer { buffer.deallocate() }
        return try body(buffer)
    }

    /// A download in progress: a temporary file beside the target, removed unless committed.
    final class Download {
        let target: String
        private let temporary: String
        private let descriptor: Int32
        private var committed = false

        init(target: String) throws {
            self.target = target
            let url = URL(fileURLWithPath: target)
            temporary =
                url.deletingLastPathComponent().appendingPathComponent(
                    ".\(url.lastPathComponent).sfts-part-\(UUID().uuidString.prefix(8))"
                ).path
            // Private until verified; commit gives it the usual mode.
            descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard descriptor >= 0 else {
                throw ClientError(
                    .local, "cannot create \(temporary): \(String(cString: strerror(errno)))")
            }
            InterruptCleanup.register(temporary)
        }

        deinit {
            if !committed {
                close(descriptor)
                unlink(temporary)
            }
            InterruptCleanup.clear()
        }

        func write(_ buffer: UnsafeRawBufferPointer) throws {
            var offset = 0
            while offset < buffer.count {
                let written = Glibc.write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    throw ClientError(
                        .local, "cannot write \(temporary): \(String(cString: strerror(errno)))")
                }
                offset += written
            }
        }

        /// Flushes the file and gives it the target name: with `replace` by rename, otherwise
        /// by link, which fails instead of replacing a file that appeared meanwhile.
        func commit(replace: Bool) throws {
            let mask = umask(0)
            umask(mask)
            fchmod(descriptor, 0o666 & ~mask)
            guard fsync(descriptor) == 0 else {
                throw ClientError(.local, "cannot flush \(temporary): \(String(cString: strerror(errno)))")
            }
            if replace {
                guard rename(temporary, target) == 0 else {
                    throw ClientError(.local, "cannot rename to \(target): \(String(cString: strerror(errno)))")
                }
            } else {
                guard link(temporary, target) == 0 else {
                    let code = errno
                    throw ClientError(
                        code == EEXIST ? .alreadyExists : .local,
                        code == EEXIST
                            ? "\(target) already exists; use --force to replace it"
                            : "cannot create \(target): \(String(cString: strerror(code)))")
                }
                unlink(temporary)
            }
            committed = true
            close(descriptor)
        }
    }
}

/// The temporary file of a download in progress, deleted when SIGINT, SIGTERM or SIGHUP ends
/// the process, so an interrupted `get` leaves no unverified data behind. SIGKILL cannot be
/// caught; a file left by it has a `.sfts-part-` name beside the target.
enum InterruptCleanup {
    /// A C copy of the path, so the signal handler only calls async-signal-safe functions.
    fileprivate static var path: UnsafeMutablePointer<CChar>?
    private static let signals = [SIGINT, SIGTERM, SIGHUP]

    static func register(_ temporary: String) {
        clear()
        path = strdup(temporary)
        var unblocked = sigset_t()
        sigemptyset(&unblocked)
        for signal in signals {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = interruptHandler
            sigemptyset(&action.sa_mask)
            sigaction(signal, &action, nil)
            sigaddset(&unblocked, signal)
        }
        // A parent may have started this process with the signals blocked, which children inherit.
        pthread_sigmask(SIG_UNBLOCK, &unblocked, nil)
    }

    static func clear() {
        guard let current = path else { return }
        for signal in signals {
            Glibc.signal(signal, SIG_DFL)
        }
        path = nil
        free(current)
    }
}

private func interruptHandler(_ signal: Int32) {
    if let path = InterruptCleanup.path {
        unlink(path)
    }
    Glibc.signal(signal, SIG_DFL)
    raise(signal)
}
