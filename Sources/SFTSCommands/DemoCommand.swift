import Foundation

enum DemoCommand {
    static func run(_ arguments: ParsedArguments) throws -> ExitCode {
        throw UsageError("demo not yet available")
    }
}
