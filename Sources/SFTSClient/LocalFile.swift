import CSystem
import Foundation
import SFTSProtocol

#if canImport(Glibc)
    import Glibc
#endif

/// Local file handling for transfers.
enum LocalFile {
    /// Opens a regular file and returns its descriptor, which the caller closes, and its size.
    ///
    /// `identity` is the file planned for a recursive upload. With it, the last component must
    /// not be a symbolic link and the opened file must be that file, so a name swapped for a
    /// link or a FIFO after planning is rejected. The open never blocks, even on a FIFO.
    static func openForReading(_ path: String, identity: FileIdentity? = nil) throws -> (
        descriptor: Int32, size: UInt64
    ) {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | (identity == nil ? 0 : O_NOFOLLOW))
        guard descriptor >= 0 else {
            let code = errno
            if code == ELOOP, identity != nil {
                throw ClientError(.local, "\(path) became a symbolic link after it was planned; nothing more was sent")
            }
            throw ClientError(
                code == ENOENT ? .notFound : .local,
                "cannot open \(path): \(String(cString: strerror(code)))")
        }
        var status = stat()
        guard fstat(descriptor, &status) == 0, status.st_mode & S_IFMT == S_IFREG else {
            let folder = status.st_mode & S_IFMT == S_IFDIR
            close(descriptor)
            throw ClientError(
                folder ? .invalidInput : .local,
                folder ? "\(path) is a folder; use -r to send it with its contents" : "\(path) is not a regular file")
        }
        if let identity, FileIdentity(status) != identity {
            close(descriptor)
            throw ClientError(.local, "\(path) was replaced after it was planned; nothing more was sent")
        }
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) & ~O_NONBLOCK)
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

    /// Returns `path` without trailing slashes, except for the root itself.
    static func withoutTrailingSlash(_ path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1, trimmed.hasSuffix("/") {
            trimmed.removeLast()
        }
        return String(trimmed)
    }

    /// Returns the folder part of a local path: "." for a bare name, "/" for a file in the
    /// root. Foundation's deletingLastPathComponent crashes on one-character names in
    /// swift-corelibs-foundation 6.3, so this splits the string itself.
    static func parentFolder(of path: String) -> String {
        let trimmed = withoutTrailingSlash(path)
        guard let slash = trimmed.lastIndex(of: "/") else { return "." }
        let folder = trimmed[..<slash]
        return folder.isEmpty ? "/" : String(folder)
    }

    /// A download in progress: a temporary file beside the target, removed unless committed.
    /// Every step works relative to a descriptor of the target's folder, so the file ends up in
    /// the folder opened here even if the folder's path changes meanwhile.
    final class Download {
        let target: String
        private let folder: Int32
        private let name: String
        private let temporary: String
        private let descriptor: Int32
        private var committed = false

        /// With `folderIdentity`, the folder must still be the one a recursive download planned.
        init(target: String, folderIdentity: FileIdentity? = nil) throws {
            self.target = target
            let folderPath = LocalFile.parentFolder(of: target)
            name = target.split(separator: "/").last.map(String.init) ?? target
            temporary = ".\(name).sfts-part-\(UUID().uuidString.prefix(8))"
            folder = open(folderPath, sfts_O_PATH | O_DIRECTORY | O_CLOEXEC)
            guard folder >= 0 else {
                throw ClientError(
                    .local,
                    "cannot open folder \(DisplayText.quotedIfUnsafe(folderPath)): \(String(cString: strerror(errno)))")
            }
            var status = stat()
            if let folderIdentity, fstat(folder, &status) != 0 || FileIdentity(status) != folderIdentity {
                close(folder)
                throw ClientError(
                    .local, "\(DisplayText.quotedIfUnsafe(folderPath)) is no longer the folder planned for the download"
                )
            }
            // Private until verified; commit gives it the usual mode. Direct I/O, where the file
            // system has it, spares copying every byte through the page cache.
            let descriptor = openat(folder, temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            self.descriptor = descriptor
            guard descriptor >= 0 else {
                let code = errno
                close(folder)
                throw ClientError(
                    .local,
                    "cannot create \(DisplayText.quotedIfUnsafe(folderPath + "/" + temporary)): \(String(cString: strerror(code)))"
                )
            }
            // fcntl fails on file systems without direct I/O, and the writes stay buffered.
            direct = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | sfts_O_DIRECT) == 0
            InterruptCleanup.register(folder: folder, temporary: temporary)
        }

        deinit {
            if !committed {
                close(descriptor)
                unlinkat(folder, temporary, 0)
            }
            InterruptCleanup.clear()
            close(folder)
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
                        .local,
                        "cannot write \(DisplayText.quotedIfUnsafe(target)): \(String(cString: strerror(errno)))")
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
                throw ClientError(
                    .local, "cannot flush \(DisplayText.quotedIfUnsafe(target)): \(String(cString: strerror(errno)))")
            }
            if replace {
                guard renameat(folder, temporary, folder, name) == 0 else {
                    throw ClientError(
                        .local,
                        "cannot rename to \(DisplayText.quotedIfUnsafe(target)): \(String(cString: strerror(errno)))")
                }
            } else {
                guard linkat(folder, temporary, folder, name, 0) == 0 else {
                    let code = errno
                    throw ClientError(
                        code == EEXIST ? .alreadyExists : .local,
                        code == EEXIST
                            ? "\(DisplayText.quotedIfUnsafe(target)) already exists; use --force to replace it"
                            : "cannot create \(DisplayText.quotedIfUnsafe(target)): \(String(cString: strerror(code)))")
                }
                unlinkat(folder, temporary, 0)
            }
            committed = true
            close(descriptor)
        }
    }
}

/// Cleans up after SIGINT, SIGTERM or SIGHUP during a transfer: deletes the temporary file
/// of a download in progress, so an interrupted `get` leaves no unverified data behind, and
/// erases a progress line. SIGKILL cannot be caught; a file left by it has a `.sfts-part-`
/// name beside the target. A signal the process was started to ignore, as `nohup` ignores
/// SIGHUP, stays ignored.
enum InterruptCleanup {
    /// The folder descriptor and a C copy of the name, so the signal handler only calls
    /// async-signal-safe functions.
    fileprivate nonisolated(unsafe) static var folder: Int32 = -1
    fileprivate nonisolated(unsafe) static var name: UnsafeMutablePointer<CChar>?
    /// Set while a progress line is on standard error.
    nonisolated(unsafe) static var progressShown = false
    private nonisolated(unsafe) static var previous: [Int32: sigaction] = [:]
    private static let signals = [SIGINT, SIGTERM, SIGHUP]

    /// Installs the handlers for a transfer; `temporary`, in `folder`, is deleted on a signal.
    static func register(folder: Int32 = -1, temporary: String? = nil) {
        clear()
        self.folder = folder
        name = temporary.map { strdup($0) }
        var unblocked = sigset_t()
        sigemptyset(&unblocked)
        for signal in signals {
            var current = sigaction()
            sigaction(signal, nil, &current)
            if let handler = current.__sigaction_handler.sa_handler,
                unsafeBitCast(handler, to: Int.self) == unsafeBitCast(SIG_IGN, to: Int.self)
            {
                continue
            }
            var action = sigaction()
            action.__sigaction_handler.sa_handler = interruptHandler
            sigemptyset(&action.sa_mask)
            sigaction(signal, &action, nil)
            previous[signal] = current
            sigaddset(&unblocked, signal)
        }
        // A parent may have started this process with the signals blocked, which children inherit.
        pthread_sigmask(SIG_UNBLOCK, &unblocked, nil)
    }

    /// Puts back the handlers that were there before ``register(folder:temporary:)``.
    static func clear() {
        for (signal, action) in previous {
            var action = action
            sigaction(signal, &action, nil)
        }
        previous = [:]
        if let current = name {
            name = nil
            free(current)
        }
        folder = -1
    }
}

private func interruptHandler(_ signal: Int32) {
    if let name = InterruptCleanup.name, InterruptCleanup.folder >= 0 {
        unlinkat(InterruptCleanup.folder, name, 0)
    }
    if InterruptCleanup.progressShown {
        let erase: [UInt8] = [0x0D, 0x1B, 0x5B, 0x4B]
        _ = erase.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
    }
    Glibc.signal(signal, SIG_DFL)
    raise(signal)
}
