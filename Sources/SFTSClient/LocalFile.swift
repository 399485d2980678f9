import CSystem
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
        _ = posix_fadvise(descriptor, 0, 0, POSIX_FADV_SEQUENTIAL)
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
            // Private until verified; commit gives it the usual mode. Direct I/O, where the file
            // system has it, spares copying every byte through the page cache.
            let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            self.descriptor = descriptor
            guard descriptor >= 0 else {
                throw ClientError(
                    .local, "cannot create \(temporary): \(String(cString: strerror(errno)))")
            }
            // fcntl fails on file systems without direct I/O, and the writes stay buffered.
            direct = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | sfts_O_DIRECT) == 0
            InterruptCleanup.register(temporary)
        }

        deinit {
            if !committed {
                close(descriptor)
                unlink(temporary)
            }
            InterruptCleanup.clear()
        }

        private var written: Int64 = 0
        private var writebackStart: Int64 = 0
        private var direct = false

        /// Writes the whole buffer. The first write that does not suit O_DIRECT, normally the
        /// last, turns direct I/O off for the rest of the file.
        func write(_ buffer: UnsafeRawBufferPointer) throws {
            if direct {
                let alignment = Int(sfts_direct_alignment)
                let aligned =
                    buffer.baseAddress.map { Int(bitPattern: $0) % alignment == 0 } == true
                    && buffer.count % alignment == 0
                if !aligned {
                    _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) & ~sfts_O_DIRECT)
                    direct = false
                }
            }
            var offset = 0
            while offset < buffer.count {
                let count = Glibc.write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                if count < 0 {
                    if errno == EINTR { continue }
                    throw ClientError(
                        .local, "cannot write \(temporary): \(String(cString: strerror(errno)))")
                }
                offset += count
            }
            written += Int64(buffer.count)
            // Start writeback every 32 MiB, so the fsync before the rename has less to flush.
            if written - writebackStart >= 32 << 20 {
                _ = sfts_start_writeback(descriptor, writebackStart, written - writebackStart)
                writebackStart = written
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
