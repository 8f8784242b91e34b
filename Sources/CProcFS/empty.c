// The module needs a source file; its code is the header.
