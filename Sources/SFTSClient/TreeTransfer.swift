import Foundation
import SFTSProtocol

#if canImport(Glibc)
    import Glibc
#endif

/// Device and inode of a local file, to tell whether a path still names the file it named.
public struct FileIdentity: Sendable, Equatable {
    let device: UInt64
    let inode: UInt64

    init(_ status: stat) {
        device = UInt64(status.st_dev)
        inode = UInt64(status.st_ino)
    }
}

/// One file of a recursive transfer: where it is read and where it goes.
public struct TreeItem: Sendable, Equatable {
    public let local: String
    public let remote: String
    public let size: UInt64
    /// For an upload, the file found when planning, which is the only file sent. For a
    /// download, the folder made for it, which is the only folder it is saved in.
    public internal(set) var identity: FileIdentity? = nil
}

/// The files of a recursive transfer, planned and checked before the first byte moves, so a
/// bad name or a file in the way fails the command with nothing transferred.
public struct TreePlan: Sendable {
    /// The folder the transfer fills: remote for an upload, local for a download.
    public internal(set) var top: String
    public internal(set) var files: [TreeItem] = []
    /// Local folders a download creates, parents first.
    public internal(set) var folders: [String] = []
    /// Entries left out, each with the reason, for a warning.
    public internal(set) var skipped: [String] = []

    public var totalBytes: UInt64 {
        files.reduce(0) { total, item in
            let (sum, overflow) = total.addingReportingOverflow(item.size)
            return overflow ? .max : sum
        }
    }
}

/// A remote file or folder found by ``FileClient/listTree(_:)``, with its path from the top.
public struct RemoteTreeEntry: Sendable {
    public let path: RemotePath
    public let entry: ListEntry
}

extension FileClient {
    /// The most files one recursive transfer may plan.
    public static let maxTreeFiles = 100_000

    /// Plans `put -r`: every regular file under `localFolder`, with its path relative to it
    /// appended to `remoteFolder` (default: the local folder's name). Symbolic links and other
    /// special files are skipped, and an empty folder is reported, since the server keeps
    /// folders only as the parents of files. Throws for the first name the server would reject.
    public static func uploadPlan(localFolder: String, remoteFolder: String?) throws -> TreePlan {
        var status = stat()
        guard stat(localFolder, &status) == 0 else {
            let code = errno
            throw ClientError(
                code == ENOENT ? .notFound : .local,
                "cannot read folder \(localFolder): \(String(cString: strerror(code)))")
        }
        guard status.st_mode & S_IFMT == S_IFDIR else {
            throw ClientError(.invalidInput, "\(localFolder) is not a folder; put it without -r")
        }
        let top = try ClientError.remotePath(
            remoteFolder ?? LocalFile.lastComponent(of: localFolder), allowRoot: true, allowTrailingSlash: true)
        var plan = TreePlan(top: top.description)
        try walkLocal(localFolder, remote: top, into: &plan)
        var sources: [String: String] = [:]
        for item in plan.files {
            if let first = sources.updateValue(item.local, forKey: item.remote) {
                throw ClientError(
                    .rejected,
                    "\(DisplayText.quotedIfUnsafe(first)) and \(DisplayText.quotedIfUnsafe(item.local)) would both be stored as "
                        + "\(RemotePath.quoted(item.remote)), since remote names are Unicode-normalised (NFC); "
                        + "rename one; nothing was sent")
            }
        }
        return plan
    }

    private static func walkLocal(_ folder: String, remote: RemotePath, into plan: inout TreePlan) throws {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: folder).sorted()
        } catch {
            throw ClientError(.local, "cannot read folder \(folder): \(error.localizedDescription)")
        }
        if names.isEmpty {
            plan.skipped.append("\(DisplayText.quotedIfUnsafe(folder)): empty folder, not created on the server")
        }
        for name in names {
            let local = folder.hasSuffix("/") ? folder + name : folder + "/" + name
            var status = stat()
            guard lstat(local, &status) == 0 else {
                throw ClientError(.local, "cannot read \(local): \(String(cString: strerror(errno)))")
            }
            let type = status.st_mode & S_IFMT
            guard type == S_IFREG || type == S_IFDIR else {
                plan.skipped.append(
                    "\(DisplayText.quotedIfUnsafe(local)): \(type == S_IFLNK ? "symbolic link" : "not a regular file"), skipped"
                )
                continue
            }
            let text = (remote.components + [name.precomposedStringWithCanonicalMapping]).joined(separator: "/")
            let path: RemotePath
            do {
                path = try RemotePath(text)
            } catch let error as InvalidNameError {
                throw ClientError(
                    .rejected,
                    "cannot upload \(DisplayText.quotedIfUnsafe(local)): \(error.description); nothing was sent")
            }
            if type == S_IFDIR {
                try walkLocal(local, remote: path, into: &plan)
            } else {
                plan.files.append(
                    TreeItem(
                        local: local, remote: path.description, size: UInt64(status.st_size),
                        identity: FileIdentity(status)))
                guard plan.files.count <= maxTreeFiles else {
                    throw ClientError(
                        .invalidInput, "\(folder) holds more than \(maxTreeFiles) files; send it in parts")
                }
            }
        }
    }

    /// Lists the files and folders under remote folder `path`, depth first, each entry's name
    /// checked as one path component so a hostile listing cannot point outside the folder.
    public func listTree(_ path: String) throws -> [RemoteTreeEntry] {
        let top = try ClientError.remotePath(path, allowRoot: true, allowTrailingSlash: true)
        var found: [RemoteTreeEntry] = []
        try walkRemote(top, into: &found)
        return found
    }

    private func walkRemote(_ folder: RemotePath, into found: inout [RemoteTreeEntry]) throws {
        var names = Set<String>()
        for entry in try list(folder.description, long: true) {
            let child = try FileClient.childPath(of: folder, name: entry.name)
            guard names.insert(child.lastComponent).inserted else {
                throw ClientError(
                    .network, "the server listed \(RemotePath.quoted(child.lastComponent)) twice in \(folder)")
            }
            found.append(RemoteTreeEntry(path: child, entry: entry))
            guard found.count <= FileClient.maxTreeFiles else {
                throw ClientError(.invalidInput, "\(folder) holds more than \(FileClient.maxTreeFiles) entries")
            }
            if entry.kind == ListEntry.folderKind {
                try walkRemote(child, into: &found)
            }
        }
    }

    /// The path of `name`, as a listing of `folder` gives it, checked to be exactly one
    /// valid component below `folder`.
    static func childPath(of folder: RemotePath, name: String) throws -> RemotePath {
        let child: RemotePath
        do {
            child = try RemotePath((folder.components + [name]).joined(separator: "/"))
        } catch let error as InvalidNameError {
            throw ClientError(.network, "the server listed an invalid name in \(folder): \(error.description)")
        }
        guard child.components.count == folder.components.count + 1 else {
            throw ClientError(.network, "the server listed an invalid name in \(folder): \(RemotePath.quoted(name))")
        }
        return child
    }

    /// Plans `get -r` of remote folder `remote` into `localFolder` (default: the remote
    /// folder's name in the current folder): the folders to create and the files to fetch.
    /// Without `force`, a local file in the way fails the plan, naming it.
    public func downloadPlan(remote: String, localFolder: String?, force: Bool) throws -> TreePlan {
        let top = try ClientError.remotePath(remote, allowRoot: true, allowTrailingSlash: true)
        let target = localFolder ?? (top.isRoot ? "." : top.lastComponent)
        var plan = TreePlan(top: target)
        plan.folders.append(target)
        var inTheWay: [String] = []
        for item in try listTree(top.description) {
            let relative = item.path.components.dropFirst(top.components.count).joined(separator: "/")
            let local = target.hasSuffix("/") ? target + relative : target + "/" + relative
            var status = stat()
            let exists = lstat(local, &status) == 0
            if item.entry.kind == ListEntry.folderKind {
                if exists && status.st_mode & S_IFMT != S_IFDIR {
                    throw ClientError(.alreadyExists, "\(local) exists and is not a folder; nothing was fetched")
                }
                plan.folders.append(local)
            } else if item.entry.kind == ListEntry.fileKind {
                if exists && (status.st_mode & S_IFMT != S_IFREG || !force) {
                    inTheWay.append(local)
                }
                plan.files.append(TreeItem(local: local, remote: item.path.description, size: item.entry.size))
            }
        }
        if !inTheWay.isEmpty {
            let shown = inTheWay.prefix(3).joined(separator: ", ") + (inTheWay.count > 3 ? ", ..." : "")
            throw ClientError(
                .alreadyExists,
                "\(inTheWay.count) local file(s) already exist: \(shown); use --force to replace them "
                    + "(only regular files are replaced); nothing was fetched")
        }
        return plan
    }

    /// Creates the local folders of a download plan and keeps those that exist. Each file
    /// of the plan gets the identity of its folder, so it goes into the folder made here even
    /// if a path is swapped for a symbolic link later. A folder whose parent is no longer the
    /// planned one stops the download.
    public static func createFolders(of plan: inout TreePlan) throws {
        var identities: [String: FileIdentity] = [:]
        for folder in plan.folders {
            var status = stat()
            if lstat(folder, &status) != 0 {
                guard mkdir(folder, 0o777) == 0, lstat(folder, &status) == 0 else {
                    throw ClientError(
                        .local,
                        "cannot create folder \(DisplayText.quotedIfUnsafe(folder)): \(String(cString: strerror(errno)))"
                    )
                }
            }
            guard status.st_mode & S_IFMT == S_IFDIR else {
                throw ClientError(.alreadyExists, "\(DisplayText.quotedIfUnsafe(folder)) exists and is not a folder")
            }
            if let parent = identities[LocalFile.withoutTrailingSlash(LocalFile.parentFolder(of: folder))] {
                var parentStatus = stat()
                guard stat(folder + "/..", &parentStatus) == 0, FileIdentity(parentStatus) == parent else {
                    throw ClientError(
                        .local, "\(DisplayText.quotedIfUnsafe(folder)) is no longer inside the folder planned for it")
                }
            }
            identities[LocalFile.withoutTrailingSlash(folder)] = FileIdentity(status)
        }
        for index in plan.files.indices {
            plan.files[index].identity =
                identities[LocalFile.withoutTrailingSlash(LocalFile.parentFolder(of: plan.files[index].local))]
        }
    }

    /// The remote files under `remoteFolder` that a planned upload would replace, found by
    /// listing it. The result is empty when the folder does not exist yet.
    public func existingFiles(of plan: TreePlan, under remoteFolder: String) throws -> [String] {
        let entries: [RemoteTreeEntry]
        do {
            entries = try listTree(remoteFolder)
        } catch let error as ClientError where error.kind == .notFound {
            return []
        }
        let present = Set(entries.map(\.path.description))
        return plan.files.map(\.remote).filter { present.contains($0) }
    }
}
