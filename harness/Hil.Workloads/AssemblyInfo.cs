// Hil.Workloads: folders Kmod/, Holder/, Xtest/ (workloads) and Tracing/ (the call-queue tracer).
