#include "ferryd/app.h"

int main(int argc, char** argv) {
  return ferry::FerrydMain(argc, argv);
}
