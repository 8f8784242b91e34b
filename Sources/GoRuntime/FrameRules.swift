/// Which frames and functions are the runtime's or the compiler's, per release: what
/// gmon leaves out of a creation site, and how it sees through the compiler's wrappers.
public enum FrameRules {
    /// Frames the runtime itself runs to create a goroutine: never the creation site.
    public static let runtimeCreationFrames: Set<String> = [
        "runtime.newproc.func1", "runtime.newproc1", "runtime.systemstack", "runtime.systemstack_switch",
        "runtime.newproc", "runtime.runqput",
        // coroutines (iter.Pull) and synctest bubbles are made here
        "runtime.newcoro", "runtime.newcoro.func1", "runtime.synctestRun", "runtime.synctestRun.func2",
    ]

    /// A coroutine starts in runtime.corostart; iter.Pull made it for the user's code.
    public static let coroutineStart = "runtime.corostart"

    /// Frames of iter.Pull (and its closures) above a coroutine's creation.
    public static func isCoroutineMaker(_ function: String) -> Bool { function.hasPrefix("iter.Pull") }

    /// funcID of the compiler's wrappers (FuncIDWrapper / funcID_wrapper) per release; nil
    /// from 1.22, where go-statement wrappers are named *.gowrapN instead.
    public static func wrapperFuncID(release: (major: Int, minor: Int)?) -> UInt8? {
        switch release?.minor {
        case 18?, 19?, 20?, 21?: return 21
        case 17?: return 22
        default: return nil
        }
    }

    /// A go statement's wrapper by name (Go 1.22+: `main.main.gowrap1`).
    public static func isGoStatementWrapperName(_ name: String) -> Bool { name.contains(".gowrap") }

    /// Calls a wrapper makes that are not the wrapped function: the stack-growth call every
    /// Go prologue makes, and the race detector's instrumentation in -race builds.
    public static func isInstrumentationCallee(_ name: String) -> Bool {
        name.hasPrefix("runtime.morestack") || name.hasPrefix("runtime.race")
    }

    /// The function name as the user wrote it: a method value (`f := obj.Run; go f()`) starts
    /// in the compiler's "-fm" closure on Go 1.21+, in the method on earlier releases.
    public static func withoutMethodValueSuffix(_ name: String) -> String {
        name.hasSuffix("-fm") ? String(name.dropLast(3)) : name
    }

    /// A function's name as Go's tracebacks print it: type arguments as "[...]".
    public static func printName(_ name: String) -> String {
        guard let open = name.firstIndex(of: "["), let close = name.lastIndex(of: "]"), open < close else { return name }
        return String(name[..<open]) + "[...]" + String(name[name.index(after: close)...])
    }
}
