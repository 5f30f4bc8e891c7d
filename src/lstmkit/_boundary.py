"""The compiled core's boundary as Python sees it: one ``ctypes.Structure`` per struct of ``_core/core.h``, field
for field and in its order. ``compiled._load`` checks each one's size against the library's before anything runs."""

from __future__ import annotations

import ctypes

_P, _I, _L = ctypes.c_void_p, ctypes.c_int, ctypes.c_long
MAX_THREADS = 64                                          # core.h's LK_MAX_THREADS


class Forward(ctypes.Structure):
    """core.h's LkForward, field for field: what lk_scan_forward reads and writes."""

    _fields_ = [(n, _I) for n in ("kind", "f64", "T", "B", "H", "I", "direct", "threads")] + [
        ("gates", _P), ("w_hh_t", _P), ("wk", _L), ("wn", _L), ("x", _P), ("w_ih", _P), ("x_t", _L), ("x_b", _L),
        ("bias", _P), ("b_loop", _P),
        ("extra", _P), ("hs", _P), ("cs", _P), ("tanh_cs", _P), ("hproj", _P), ("y", _P), ("y_t", _L), ("y_b", _L),
        ("P", _I), ("w_hr", _P), ("ms", _P), ("saved", _P), ("rmask", _P), ("h_raw", _P), ("c_raw", _P), ("zh", _P),
        ("zc", _P), ("zh_p", ctypes.c_double), ("zc_p", ctypes.c_double), ("by_rows", _I), ("failed", _I)]


class Backward(ctypes.Structure):
    """core.h's LkBackward, field for field: what lk_scan_backward reads and writes."""

    _fields_ = [(n, _I) for n in ("kind", "f64", "T", "B", "H", "I", "direct", "threads")] + [
        ("gates", _P), ("hs", _P), ("cs", _P), ("tanh_cs", _P), ("hproj", _P), ("w_hh", _P), ("w_ih", _P),
        ("extra", _P), ("dhs", _P), ("dhs_t", _L), ("dhs_b", _L), ("last", _P), ("dh_n", _P), ("dc_n", _P),
        ("dpre_x", _P), ("dpre_h", _P), ("dh0", _P), ("dc0", _P), ("db_x", _P), ("db_h", _P), ("d_extra", _P),
        ("dx", _P), ("dx_t", _L), ("dx_b", _L), ("P", _I), ("w_hr", _P), ("ms", _P), ("dh_all", _P), ("saved", _P),
        ("rmask", _P), ("h_raw", _P), ("c_raw", _P), ("zh", _P), ("zc", _P), ("zh_p", ctypes.c_double),
        ("zc_p", ctypes.c_double), ("by_rows", _I), ("failed", _I),
        ("shares", _P * MAX_THREADS)]


class Grad(ctypes.Structure):
    """core.h's LkGrad, field for field: what lk_weight_grads reads and writes."""

    _fields_ = [(n, _I) for n in ("f64", "M", "K", "nprod", "threads")] + [
        ("a", _P * 2), ("b", _P * 2), ("c", _P * 2), ("lda", _L * 2), ("ldb", _L * 2), ("ldc", _L * 2),
        ("ldb_t", _L * 2), ("per", _L * 2), ("N", _I * 2), ("failed", _I)]


class CtcForward(ctypes.Structure):
    """core.h's LkCtcForward, field for field: what lk_ctc_forward reads and writes."""

    _fields_ = [(n, _I) for n in ("T", "R", "W", "threads")] + [
        (n, _P) for n in ("A", "pre", "skip", "emit", "scale")]


class CtcOccupancy(ctypes.Structure):
    """core.h's LkCtcOccupancy, field for field: what lk_ctc_occupancy reads and writes."""

    _fields_ = [(n, _I) for n in ("T", "B", "W", "C", "threads")] + [
        (n, _P) for n in ("A", "pre", "log_scale", "Tl", "Ll", "ext", "logP", "feasible", "occ")]


class KindInfo(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p)] + [(n, _I) for n in ("gates", "cell", "split", "extra", "proj", "whole",
                                                                  "saved")]


class Conv(ctypes.Structure):
    """core.h's LkConv, field for field: what lk_conv_forward and lk_conv_wgrad read and write."""

    _fields_ = [(n, _I) for n in ("f64", "N", "H", "W", "C", "O", "Ho", "Wo", "kh", "kw", "sh", "sw", "dil_h",
                                  "dil_w", "pt", "pl", "Hp", "Wp", "relu", "threads")] + [
        ("x", _P), ("w", _P), ("wk", _L), ("wo", _L), ("bias", _P), ("y", _P), ("dy", _P), ("dw", _P),
        ("packed", _P), ("parts", _P * MAX_THREADS), ("failed", _I)]


class Pool(ctypes.Structure):
    """core.h's LkPool, field for field: what lk_maxpool_forward and lk_maxpool_backward read and write."""

    _fields_ = [(n, _I) for n in ("f64", "N", "H", "W", "C", "Ho", "Wo", "kh", "kw", "sh", "sw", "ph", "pw",
                                  "threads")] + [(n, _P) for n in ("x", "y", "arg", "dy", "dx")]


class Adam(ctypes.Structure):
    """core.h's LkAdam, field for field: what lk_adam reads and writes."""

    _fields_ = [("f64", _I), ("n", _L)] + [(n, _P) for n in ("p", "g", "m", "v", "vmax")] + [
        (n, ctypes.c_double) for n in ("decay", "l2", "b1", "b2", "eps", "step_size", "bc2_sqrt")]


# lk_struct_size's order.
STRUCTS = (Forward, Backward, Grad, KindInfo, CtcForward, CtcOccupancy, Conv, Pool, Adam)
# Each entry point and the struct it takes.
ENTRIES = (("lk_scan_forward", Forward), ("lk_scan_backward", Backward), ("lk_weight_grads", Grad),
           ("lk_ctc_forward", CtcForward), ("lk_ctc_occupancy", CtcOccupancy), ("lk_conv_forward", Conv),
           ("lk_conv_wgrad", Conv), ("lk_conv_input_grad", Conv), ("lk_maxpool_forward", Pool),
           ("lk_maxpool_backward", Pool), ("lk_adam", Adam))
