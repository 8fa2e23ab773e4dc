// expect: is private within this context
// The API's handles come from the runtime only: no public constructor takes
// a runtime internal.
#include <dobj/dobj.h>

dobj::Storage make(dobj::internal::ObjectStore* store) { return dobj::Storage(store); }
