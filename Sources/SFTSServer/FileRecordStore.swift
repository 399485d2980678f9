import Foundation

/// The server's record of a file that arrived through `put`.
public struct FileRecord: Codable, Equatable, Sendable {
    public var uploader: String
    public var sha256: String
    public var size: UInt64
    public var uploadedAt: String
    /// The uploader's RSA-PSS signature over the upload record, base64.
    public var signature: String
    /// The request id and timestamp the signature covers.
    public var requestID: String
    public var requestTimestamp: String

    public init(
        uploader: String, sha256: String, size: UInt64, uploadedAt: String, signature: String,
        requestID: String, requestTimestamp: String
    ) {
        self.uploader = uploader
        self.sha256 = sha256
        self.size = size
        self.uploadedAt = uploadedAt
        self.signature = signature
        self.requestID = requestID
        self.requestTimestamp = requestTimestamp
    }
}

/// Upload records by path. Implementations must make each call atomic.
public protocol FileRecordStore: Sendable {
    func record(for path: String) throws -> FileRecord?
    func records() throws -> [String: FileRecord]
    func set(_ record: FileRecord, for path: String) throws
    func remove(_ path: String) throws
}

/// The default record store: files.json, a JSON object from path to record.
public struct JSONFileRecordStore: FileRecordStore {
    private let file: JSONFile<[String: FileRecord]>

    public init(url: URL) {
        file = JSONFile(url: url, empty: { [:] })
    }

    public func record(for path: String) throws -> FileRecord? {
        try file.read()[path]
    }

    public func records() throws -> [String: FileRecord] {
        try file.read()
    }

    public func set(_ record: FileRecord, for path: String) throws {
        try file.update { $0[path] = record }
    }

    public func remove(_ path: String) throws {
        try file.update { records in
            records.removeValue(forKey: path)
            let folderPrefix = path + "/"
            for key in records.keys where key.hasPrefix(folderPrefix) {
                records.removeValue(forKey: key)
            }
        }
    }
}
