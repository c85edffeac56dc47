# cmake -DOUT=file.cc -DFILES="a.sql|b.sql" -P EmbedMigrations.cmake
string(REPLACE "|" ";" FILES "${FILES}")
set(body "")
foreach(f IN LISTS FILES)
  get_filename_component(name ${f} NAME)
  file(READ ${f} text)
  string(FIND "${text}" ")ferry_sql\"" clash)
  if(NOT clash EQUAL -1)
    message(FATAL_ERROR "${name} contains the raw-string delimiter )ferry_sql\"")
  endif()
  string(APPEND body "      {\"${name}\", R\"ferry_sql(${text})ferry_sql\"},\n")
endforeach()
file(WRITE ${OUT}.tmp
"#include \"migrations/embedded.h\"

namespace ferry::migrations {

const std::vector<std::pair<std::string, std::string>>& EmbeddedFiles() {
  static const std::vector<std::pair<std::string, std::string>> files = {
${body}  };
  return files;
}

}  // namespace ferry::migrations
")
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
