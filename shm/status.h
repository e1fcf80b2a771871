// The log reports cold-path errors with the project's Status/Result (core/include/sluice/).
#pragma once

#include "sluice/status.h"
