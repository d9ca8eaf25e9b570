// Registers the routines of the Rust binding crate with R.
#include <R_ext/Rdynload.h>

void mirai_register_routines(DllInfo *dll);
void mirai_install_panic_hook(void);

void R_init_mirai(DllInfo *dll) {
  mirai_register_routines(dll);
  mirai_install_panic_hook();
}
