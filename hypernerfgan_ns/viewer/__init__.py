"""nerfstudio web-viewer controls of HyperNeRFGAN: choosing which object of the generator is shown."""
