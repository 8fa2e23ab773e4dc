// The whole object-author API in one include.
#pragma once

#include "dobj/codec.h"
#include "dobj/fetch.h"
#include "dobj/http.h"
#include "dobj/id.h"
#include "dobj/object.h"
#include "dobj/server.h"
#include "dobj/status.h"
#include "dobj/storage.h"
#include "dobj/task.h"
#include "dobj/timer.h"
#include "dobj/websocket.h"
