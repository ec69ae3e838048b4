package loop

// ChooseDefault is Default's rule, for tests.
var ChooseDefault = chooseDefault
