import Foundation
import SFTSProtocol

/// The reason a request's envelope was rejected before its command ran.
public struct RequestRejection: Error, Equatable {
    public let code: WireErrorCode
    public let message: String
}

/// Rejects requests whose timestamp is outside the tolerance, in the past or the future, and
/// requests whose id was already seen within the window, so a captured request cannot be
/// played again.
public final class RequestGuard: @unchecked Sendable {
    public let tolerance: TimeInterval
    private var seen: [String: Date] = [:]
    private var nextPurge = Date.distantPast
    private let lock = NSLock()

    public init(tolerance: TimeInterval) {
        self.tolerance = tolerance
    }

    /// Checks a request's id and timestamp against the clock `now`, and remembers the id.
    public func check(id: String, timestamp: String, now: Date = Date()) throws {
        guard RequestID.isValid(id) else {
            throw RequestRejection(
                code: .invalidRequest,
                message: "invalid request id; use 8 to 64 letters, digits or '-'")
        }
        guard let date = Timestamp.parse(timestamp) else {
            throw RequestRejection(
                code: .invalidRequest,
                message: "invalid timestamp \(RemotePath.quoted(timestamp)); send ISO 8601 with "
                    + "a time zone, for example 2026-01-31T12:00:00.000Z")
        }
        let skew = date.timeIntervalSince(now)
        guard abs(skew) <= tolerance else {
            let direction = skew > 0 ? "ahead of" : "behind"
            throw RequestRejection(
                code: .staleTimestamp,
                message: "request timestamp is \(Int(abs(skew).rounded())) s \(direction) the "
                    + "server clock; the tolerance is \(Int(tolerance)) s, so check the clock")
        }

        lock.lock()
        defer { lock.unlock() }
        if now >= nextPurge {
            seen = seen.filter { $0.value > now }
            nextPurge = now + tolerance
        }
        if let expiry = seen[id], expiry > now {
            throw RequestRejection(
                code: .replayedRequest, message: "request id \(id) was already used")
        }
        // An id must be remembered for as long as its timestamp could still pass the check.
        seen[id] = date + tolerance + 1
    }
}
