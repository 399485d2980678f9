import CSystem
import Foundation
import SFTSProtocol

#if canImport(Glibc)
    import Glibc
#endif

/// The reason a file operation in the served directory failed.
public enum FileStoreError: Error, Equatable, CustomStringConvertible {
    case notFound(String)
    case alreadyExists(String)
    case notAFile(String)
    case notAFolder(String)
    case symbolicLink(String)
    case folderNotEmpty(String)
    case system(call: String, path: String, errno: Int32)

    public var description: String {
        switch self {
        case .notFound(let path): return "\(RemotePath.quoted(path)) not found"
        case .alreadyExists(let path):
            return "\(RemotePath.quoted(path)) already exists; use --force to replace it"
        case .notAFile(let path): return "\(RemotePath.quoted(path)) is not a regular file"
        case .notAFolder(let path): return "\(RemotePath.quoted(path)) is not a folder"
        case .symbolicLink(let path):
            return "\(RemotePath.quoted(path)) is a symbolic link, which the server does not follow"
        case .folderNotEmpty(let path): return "folder \(RemotePath.quoted(path)) is not empty"
        case .system(let call, let path, let code):
            return "\(call) failed for \(RemotePath.quoted(path)): \(String(cString: strerror(code)))"
        }
    }
}

/// The served directory, reached only through descriptors: every path component is opened
/// relative to its parent with O_NOFOLLOW, so no symbolic link inside the directory leads
/// outside it, and a file appears under its name only once it is complete.
public final class FileStore: Sendable {
    public let root: URL

    /// Names of files being uploaded: hidden from listings and removed at start-up.
    static let temporaryPrefix = RemotePath.reservedPrefix + "tmp-"

    /// One folder or regular file in a listing.
    public struct Entry: Equatable, Sendable {
        public let name: String
        public let isFolder: Bool
        public let size: UInt64
        public let modified: Date
    }

    /// An upload in progress: a temporary file in the target's folder.
    public final class Upload {
        public let path: RemotePath
        public let descriptor: Int32
        fileprivate let folderDescriptor: Int32
        fileprivate let temporaryName: String
        fileprivate var finished = false

        fileprivate init(
            path: RemotePath, descriptor: Int32, folderDescriptor: Int32, temporaryName: String, direct: Bool
        ) {
            self.path = path
            self.direct = direct
            self.descriptor = descriptor
            self.folderDescriptor = folderDescriptor
            self.temporaryName = temporaryName
        }

        deinit {
            if !finished {
                close(descriptor)
                unlinkat(folderDescriptor, temporaryName, 0)
            }
            close(folderDescriptor)
        }

        /// Writes the whole buffer to the temporary file.
        /// Bytes between two writeback requests.
        static let writebackStep: Int64 = 32 << 20

        private var written: Int64 = 0
        private var writebackStart: Int64 = 0
        /// Whether writes still bypass the page cache; see ``FileStore/beginUpload(_:)``.
        private var direct: Bool

        /// Writes the whole buffer to the temporary file. Direct writes need aligned buffers
        /// and sizes, so the first write that is not aligned, normally the last one, turns
        /// direct I/O off for the rest of the file.
        public func write(_ buffer: UnsafeRawBufferPointer) throws {
            if direct, !FileStore.isAlignedForDirectIO(buffer) {
                _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) & ~sfts_O_DIRECT)
                direct = false
            }
            var offset = 0
            while offset < buffer.count {
                let count = Glibc.write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                if count < 0 {
                    if errno == EINTR { continue }
                    throw FileStoreError.system(call: "write", path: path.description, errno: errno)
                }
                offset += count
            }
            written += Int64(buffer.count)
            // Let the disk take the data while more arrives, so the final fsync is short.
            if written - writebackStart >= Upload.writebackStep {
                _ = sfts_start_writeback(descriptor, writebackStart, written - writebackStart)
                writebackStart = written
            }
        }
    }

    public init(root: URL) {
        self.root = root
    }

    /// Lists a folder: regular files and folders only, without temporary files.
    public func list(_ path: RemotePath) throws -> [Entry] {
        let folder = try openFolder(path)
        guard let stream = fdopendir(folder) else {
            let code = errno
            close(folder)
            throw FileStoreError.system(call: "fdopendir", path: path.description, errno: code)
        }
        defer { closedir(stream) }

        var entries: [Entry] = []
        while let item = readdir(stream) {
            let name = withUnsafePointer(to: &item.pointee.d_name) {
                String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self))
            }
            if name == "." || name == ".." || name.hasPrefix(RemotePath.reservedPrefix) {
                continue
            }
            var status = stat()
            guard fstatat(dirfd(stream), name, &status, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
            let type = status.st_mode & S_IFMT
            guard type == S_IFREG || type == S_IFDIR else { continue }
            entries.append(
                Entry(
                    name: name, isFolder: type == S_IFDIR, size: UInt64(status.st_size),
                    modified: Date(
                        timeIntervalSince1970: Double(status.st_mtim.tv_sec) + Double(
                            status.st_mtim.tv_nsec) / 1e9)))
        }
        return entries.sorted { $0.name < $1.name }
    }

    /// Opens a regular file for reading and returns its descriptor, which the caller closes,
    /// and its size.
    public func openForReading(_ path: RemotePath) throws -> (descriptor: Int32, size: UInt64) {
        let folder = try openParent(of: path, create: false)
        defer { close(folder) }
        let descriptor = openat(folder, path.lastComponent, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard descriptor >= 0 else { throw error(for: errno, call: "open", path: path.description) }
        var status = stat()
        guard fstat(descriptor, &status) == 0, status.st_mode & S_IFMT == S_IFREG else {
            close(descriptor)
            throw FileStoreError.notAFile(path.description)
        }
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) & ~O_NONBLOCK)
        // Files are read front to back once; a larger readahead keeps the disk ahead of us.
        _ = posix_fadvise(descriptor, 0, 0, POSIX_FADV_SEQUENTIAL)
        return (descriptor, UInt64(status.st_size))
    }

    /// Returns true when something, of any type, exists at `path`.
    public func exists(_ path: RemotePath) throws -> Bool {
        let folder: Int32
        do {
            folder = try openParent(of: path, create: false)
        } catch FileStoreError.notFound {
            return false
        }
        defer { close(folder) }
        var status = stat()
        return fstatat(folder, path.lastComponent, &status, AT_SYMLINK_NOFOLLOW) == 0
    }

    /// Returns true when `path` is a folder, not following a symbolic link.
    public func isFolder(_ path: RemotePath) throws -> Bool {
        let folder: Int32
        do {
            folder = try openParent(of: path, create: false)
        } catch FileStoreError.notFound {
            return false
        }
        defer { close(folder) }
        var status = stat()
        return fstatat(folder, path.lastComponent, &status, AT_SYMLINK_NOFOLLOW) == 0
            && status.st_mode & S_IFMT == S_IFDIR
    }

    /// Starts an upload to `path`, creating missing folders on the way.
    public func beginUpload(_ path: RemotePath) throws -> Upload {
        let folder = try openParent(of: path, create: true)
        let temporaryName = FileStore.temporaryPrefix + UUID().uuidString.lowercased()
        let flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC
        // Direct I/O skips copying every byte into the page cache and writing it back later,
        // which costs more CPU than the decryption on a loaded machine. It is switched on after
        // the open, so a file system without it rejects only the fcntl, and writes stay buffered.
        let descriptor = openat(folder, temporaryName, flags, 0o640)
        guard descriptor >= 0 else {
            let code = errno
            close(folder)
            throw FileStoreError.system(call: "open", path: path.description, errno: code)
        }
        let direct = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | sfts_O_DIRECT) == 0
        return Upload(
            path: path, descriptor: descriptor, folderDescriptor: folder, temporaryName: temporaryName,
            direct: direct)
    }

    /// True when a buffer's address and size suit an O_DIRECT write.
    static func isAlignedForDirectIO(_ buffer: UnsafeRawBufferPointer) -> Bool {
        let alignment = Int(sfts_direct_alignment)
        guard let base = buffer.baseAddress else { return false }
        return Int(bitPattern: base) % alignment == 0 && buffer.count % alignment == 0
    }

    /// Makes a finished upload visible under its name: fsync, then an atomic rename that
    /// fails with `alreadyExists` instead of replacing, unless `replace` is true.
    public func commit(_ upload: Upload, replace: Bool) throws {
        let name = upload.path.lastComponent
        guard fsync(upload.descriptor) == 0 else {
            throw FileStoreError.system(call: "fsync", path: upload.path.description, errno: errno)
        }
        if replace {
            // Only a regular file may be replaced; links, folders and devices placed by the
            // operator stay as they are.
            var status = stat()
            if fstatat(upload.folderDescriptor, name, &status, AT_SYMLINK_NOFOLLOW) == 0 {
                let type = status.st_mode & S_IFMT
                if type == S_IFLNK {
                    throw FileStoreError.symbolicLink(upload.path.description)
                }
                if type != S_IFREG {
                    throw FileStoreError.notAFile(upload.path.description)
                }
            }
            guard renameat(upload.folderDescriptor, upload.temporaryName, upload.folderDescriptor, name) == 0
            else {
                throw FileStoreError.system(call: "rename", path: upload.path.description, errno: errno)
            }
        } else {
            guard
                sfts_renameat_noreplace(
                    upload.folderDescriptor, upload.temporaryName, upload.folderDescriptor, name) == 0
            else {
                if errno == EEXIST { throw FileStoreError.alreadyExists(upload.path.description) }
                throw FileStoreError.system(call: "rename", path: upload.path.description, errno: errno)
            }
        }
        upload.finished = true
        close(upload.descriptor)
        fsync(upload.folderDescriptor)
    }

    /// Removes a regular file, or an empty folder. Links, devices and pipes are left alone.
    public func remove(_ path: RemotePath) throws {
        let folder = try openParent(of: path, create: false)
        defer { close(folder) }
        var status = stat()
        guard fstatat(folder, path.lastComponent, &status, AT_SYMLINK_NOFOLLOW) == 0 else {
            throw error(for: errno, call: "stat", path: path.description)
        }
        let type = status.st_mode & S_IFMT
        if type == S_IFLNK {
            throw FileStoreError.symbolicLink(path.description)
        }
        guard type == S_IFREG || type == S_IFDIR else {
            throw FileStoreError.notAFile(path.description)
        }
        let isFolder = type == S_IFDIR
        guard unlinkat(folder, path.lastComponent, isFolder ? AT_REMOVEDIR : 0) == 0 else {
            if errno == ENOTEMPTY || errno == EEXIST {
                throw FileStoreError.folderNotEmpty(path.description)
            }
            throw error(for: errno, call: "unlink", path: path.description)
        }
        fsync(folder)
    }

    /// Deletes temporary files left by uploads that never finished, as after a crash, and
    /// returns how many it removed.
    @discardableResult
    public func removeStaleTemporaries() -> Int {
        let top = open(root.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard top >= 0 else { return 0 }
        return removeTemporaries(in: top, depth: 0)
    }

    private func removeTemporaries(in folder: Int32, depth: Int) -> Int {
        guard depth < 64, let stream = fdopendir(folder) else {
            close(folder)
            return 0
        }
        defer { closedir(stream) }
        var removed = 0
        var subfolders: [String] = []
        while let item = readdir(stream) {
            let name = withUnsafePointer(to: &item.pointee.d_name) {
                String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self))
            }
            if name == "." || name == ".." { continue }
            if name.hasPrefix(FileStore.temporaryPrefix) {
                if unlinkat(dirfd(stream), name, 0) == 0 { removed += 1 }
            } else if item.pointee.d_type == UInt8(DT_DIR) {
                subfolders.append(name)
            }
        }
        for name in subfolders {
            let child = openat(dirfd(stream), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if child >= 0 {
                removed += removeTemporaries(in: child, depth: depth + 1)
            }
        }
        return removed
    }

    private func openRoot() throws -> Int32 {
        let descriptor = open(root.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw FileStoreError.system(call: "open", path: root.path, errno: errno)
        }
        return descriptor
    }

    /// Opens the folder `path` names, every component with O_NOFOLLOW.
    private func openFolder(_ path: RemotePath) throws -> Int32 {
        try walk(path.components, create: false)
    }

    /// Opens the folder that contains `path`'s last component, creating missing folders (mode
    /// 0750) when `create` is true.
    private func openParent(of path: RemotePath, create: Bool) throws -> Int32 {
        try walk(Array(path.components.dropLast()), create: create)
    }

    /// Opens `components` one below the other from the root, each with O_NOFOLLOW, and returns
    /// the last folder's descriptor.
    private func walk(_ components: [String], create: Bool) throws -> Int32 {
        var current = try openRoot()
        for (index, component) in components.enumerated() {
            var next = openat(current, component, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if next < 0, errno == ENOENT, create {
                if mkdirat(current, component, 0o750) == 0 || errno == EEXIST {
                    next = openat(current, component, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                }
            }
            if next < 0 {
                let code = errno
                // Linux reports a symbolic link opened with O_DIRECTORY | O_NOFOLLOW as ENOTDIR.
                var status = stat()
                let isLink =
                    fstatat(current, component, &status, AT_SYMLINK_NOFOLLOW) == 0
                    && status.st_mode & S_IFMT == S_IFLNK
                close(current)
                let walked = components[...index].joined(separator: "/")
                throw isLink ? .symbolicLink(walked) : error(for: code, call: "open", path: walked)
            }
            close(current)
            current = next
        }
        return current
    }

    private func error(for code: Int32, call: String, path: String) -> FileStoreError {
        switch code {
        case ENOENT: return .notFound(path)
        case ELOOP: return .symbolicLink(path)
        case ENOTDIR: return .notAFolder(path)
        case EISDIR: return .notAFile(path)
        default: return .system(call: call, path: path, errno: code)
        }
    }
}
