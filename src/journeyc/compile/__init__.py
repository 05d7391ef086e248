"""The compiler: IR models, lowering from the AST, and drawing the state machine."""
