#include <iostream>

#include "tools/ferryctl/ferryctl.h"

int main(int argc, char** argv) {
  return ferry::ctl::Run(argc, argv, std::cout, std::cerr);
}
