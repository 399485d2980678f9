import Foundation
import SFTSCommands

exit(CommandLineTool.run(Array(CommandLine.arguments.dropFirst())))
