import Foundation
import SFTSProtocol

/// Roles and their permissions, read from roles.json: a JSON object from role name to a list
/// of permission names.
public struct RolePolicy: Sendable, Equatable {
    /// The role a newly enrolled user gets.
    public static let enrollmentRole = "registered"

    public let permissions: [String: Set<Permission>]

    /// The roles `ca init` writes.
    public static let defaults = RolePolicy(permissions: [
        "admin": Set(Permission.allCases),
        "user": [.upload, .download, .ls, .delete, .update, .help, .exit],
        "registered": [.download, .ls, .update, .help, .exit],
        "unregistered": [.help, .exit],
    ])

    public init(permissions: [String: Set<Permission>]) {
        self.permissions = permissions
    }

    /// Reads roles.json; an unknown permission name is an error that names it.
    public static func load(from url: URL) throws -> RolePolicy {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw StateError(
                path: url.path,
                reason: "cannot read the roles file; pass --root with the server state root, where "
                    + "'sfts ca init' created it")
        }
        let raw: [String: [String]]
        do {
            raw = try JSONDecoder().decode([String: [String]].self, from: data)
        } catch {
            throw StateError(
                path: url.path,
                reason: "invalid JSON; expected an object from role name to a list of permissions")
        }
        var permissions: [String: Set<Permission>] = [:]
        for (role, names) in raw {
            var set = Set<Permission>()
            for name in names {
                guard let permission = Permission(rawValue: name) else {
                    let known = Permission.allCases.map(\.rawValue).joined(separator: ", ")
                    throw StateError(
                        path: url.path,
                        reason: "role '\(role)' has unknown permission '\(name)'; known: \(known)")
                }
                set.insert(permission)
            }
            permissions[role] = set
        }
        return RolePolicy(permissions: permissions)
    }

    /// Encodes this policy as roles.json text.
    public func json() throws -> Data {
        let raw = permissions.mapValues { $0.map(\.rawValue).sorted() }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        var data = try encoder.encode(raw)
        data.append(0x0A)
        return data
    }

    /// True when `role` grants `permission`; an unknown role grants nothing.
    public func allows(_ role: String, _ permission: Permission) -> Bool {
        permissions[role]?.contains(permission) ?? false
    }
}
